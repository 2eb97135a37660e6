"""Gateway fixtures: a routing file pointing at two fake providers, and OpenAI/Anthropic clients
of the running Switchboard."""

from __future__ import annotations

import itertools
import textwrap

import openai
import pytest

_counter = itertools.count()


@pytest.fixture(scope="session")
def simulator_b_session():
    from gateway.simulator import SimulatorServer

    sim = SimulatorServer()
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def simulator_b(simulator_b_session):
    simulator_b_session.reset()
    yield simulator_b_session
    simulator_b_session.reset()


@pytest.fixture
def routing(tmp_path, settings, monkeypatch, simulator, simulator_b):
    """A routing file with fresh deployment names (so circuit state never leaks between tests):
    alias ``chat`` = primary (OpenAI wire, simulator) then secondary (Anthropic wire,
    simulator_b); ``solo`` = primary only; ``embed`` = embeddings on the simulator."""
    from gateway.resilience import reset_breaker_store

    n = next(_counter)
    monkeypatch.setenv("SIM_ANTHROPIC_KEY", "sk-ant-test")
    path = tmp_path / "models.yaml"
    path.write_text(
        textwrap.dedent(f"""
        version: test-{n}
        deployments:
          - name: primary-{n}
            provider: openai_compatible
            model: sim-large
            base_url: {simulator.openai_base_url}
            timeout_s: 1.5
            max_retries: 1
            price_input_per_mtok: "0.50"
            price_output_per_mtok: "1.50"
            max_output_tokens: 512
            supports: [chat, json_schema]
          - name: secondary-{n}
            provider: anthropic
            model: claude-sim
            base_url: {simulator_b.anthropic_base_url}
            api_key_env: SIM_ANTHROPIC_KEY
            timeout_s: 1.5
            max_retries: 1
            price_input_per_mtok: "3.00"
            price_output_per_mtok: "15.00"
            max_output_tokens: 512
            supports: [chat, json_schema]
          - name: embedder-{n}
            provider: openai_compatible
            model: sim-embed
            base_url: {simulator.openai_base_url}
            timeout_s: 1.5
            max_retries: 1
            price_input_per_mtok: "0.02"
            price_output_per_mtok: "0"
            supports: [embeddings]
        aliases:
          chat: [primary-{n}, secondary-{n}]
          solo: [primary-{n}]
          embed: [embedder-{n}]
    """)
    )
    settings.SWITCHBOARD_MODELS_FILE = str(path)
    settings.SWITCHBOARD_RETRY_BASE_SECONDS = 0.01
    settings.SWITCHBOARD_RETRY_CAP_SECONDS = 0.05
    settings.SWITCHBOARD_CIRCUIT_FAILURES = 3
    settings.SWITCHBOARD_CIRCUIT_COOLDOWN_SECONDS = 0.5
    reset_breaker_store()

    class Names:
        primary = f"primary-{n}"
        secondary = f"secondary-{n}"
        embedder = f"embedder-{n}"

    yield Names
    reset_breaker_store()


@pytest.fixture
def openai_client(asgi_server, tenant_a, routing):
    return openai.OpenAI(
        base_url=asgi_server.url + "/v1", api_key=tenant_a.key, max_retries=0, timeout=20
    )


def wait_for(predicate, timeout: float = 5.0):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    return predicate()
