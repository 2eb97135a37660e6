"""Fixtures used by several apps' tests: a tenant of one's own, feature runs over HTTP, real
Celery workers, and a headless browser."""

import itertools
import shutil

import pytest

_n = itertools.count()

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def fresh_tenant(transactional_db):
    """A tenant of its own (and its own plan, which the test may tighten); dropped afterwards."""
    from tenants import services

    n = next(_n)
    suffix = f"{n}-{id(object()) % 10**6}"
    plan = services.create_plan(name=f"Tight {suffix}", slug=f"tight-{suffix}")
    tenant = services.provision_tenant(name=f"Budget {suffix}", slug=f"budget-{suffix}", plan=plan)
    issued = services.create_api_key(tenant=tenant, name="k")
    yield tenant, issued.plaintext
    from gateway.recorder import recorder

    recorder.flush()  # the server's background writes into this schema end first
    tenant.delete(force_drop=True)


@pytest.fixture
def features(tenant_a, tenant_b, routing):
    """The shipped features of both session tenants, routed to the test deployments (alias
    "chat")."""
    from prompts.models import Feature

    for tenant in (tenant_a, tenant_b):
        with tenant.context():
            Feature.objects.update(model_alias="chat")
    return tenant_a


@pytest.fixture
def run(asgi_server, tenant_a):
    """POST a feature run over HTTP (as tenant A unless told): ``run(slug, body, tenant)``."""
    import httpx

    def post(slug, body, tenant=None):
        tenant = tenant or tenant_a
        return httpx.post(
            f"{asgi_server.url}/api/v1/features/{slug}/runs",
            json=body,
            headers={"Authorization": f"Bearer {tenant.key}"},
            timeout=30,
        )

    return post


@pytest.fixture
def browser(monkeypatch):
    """Headless Chromium from the distribution's packages, driven by Playwright (never a
    browser Playwright downloads). Skipped where Chromium is not installed."""
    # Playwright's sync API runs an event loop in this thread; the test's own ORM reads are
    # still plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (make test installs it from Debian's packages)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def worker_process(transactional_db, settings):
    """Factory for real Celery worker processes (queues interactive and bulk) on the test
    database and this test process's own embedded broker folder. The environment is read when a
    worker starts, so settings a test changed first (routing, budgets) reach the worker. Each
    process is SIGKILLed at the end of the test."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from django.db import connection

    inbox = settings.EMBEDDED_BROKER_DIR / "in"
    for message in inbox.glob("*") if inbox.is_dir() else []:
        message.unlink(missing_ok=True)  # other tests' tasks are not this worker's
    started: list[subprocess.Popen] = []
    root = Path(__file__).resolve().parent.parent

    def start(**extra_env: str) -> subprocess.Popen:
        db = connection.settings_dict
        env = dict(os.environ)
        env.update(
            DATABASE_URL=f"postgresql://{db['USER']}@/{db['NAME']}?host={db['HOST']}",
            SWITCHBOARD_ENV="local",
            SWITCHBOARD_MODELS_FILE=str(settings.SWITCHBOARD_MODELS_FILE),
            SWITCHBOARD_RETRY_BASE_SECONDS=str(settings.SWITCHBOARD_RETRY_BASE_SECONDS),
            LOG_LEVEL="WARNING",
        )
        env.update(extra_env)
        command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "solo"]
        command += ["-Q", "interactive,bulk", "--without-heartbeat", "--without-gossip"]
        proc = subprocess.Popen(
            [*command, "--without-mingle", "--loglevel", "WARNING"],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(os.environ.get("SWITCHBOARD_TEST_WORKER_LOG", os.devnull), "ab"),
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)


def wait_until(predicate, timeout: float = 60.0, interval: float = 0.1):
    """Poll ``predicate`` until it returns something truthy (returned) or time runs out."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()
