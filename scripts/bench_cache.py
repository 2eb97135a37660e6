"""Answer-cache hit latency: exact and semantic hits, through the feature run API on loopback
and the lookup alone, with ``--entries`` (default 10 000) cached answers in the tenant.

    .venv/bin/python scripts/bench_cache.py [--entries 10000] [--requests 500]

It runs against its own embedded PostgreSQL (``var/bench-cache/``, stopped at the end), so it
never touches the development database. The entries are written by the cache's own
``store_answer`` with keys from the gateway's own ``build_keys``, all in one feature, prompt
version and model: the worst case for the semantic layer, which must then rank every entry of
that scope. Semantic queries are paraphrases of seeded questions (lower case, no question
mark: cosine distance ~0.01 with MiniLM), so each is a hit on the 0.05 default.
Aim (issue #7): cache hit p99 under 20 ms.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PY = sys.executable
FEATURE = "bench-faq"

INTENTS = [
    "How do I",
    "Can I",
    "Is it possible to",
    "What is the fastest way to",
    "Who can",
    "Why can't I",
    "When should I",
    "Where do I",
    "Do you let me",
    "Help me",
]
ACTIONS = [
    "reset my password",
    "export invoices",
    "change the billing address",
    "add a teammate",
    "remove a user",
    "enable two-factor login",
    "download receipts",
    "cancel my plan",
    "upgrade to the annual plan",
    "connect Slack",
    "rotate an API key",
    "merge two accounts",
    "change my email",
    "set up single sign-on",
    "restore a deleted project",
    "pause billing",
    "see last month's usage",
    "translate the widget",
    "limit spending",
    "delete my data",
    "import contacts",
    "schedule a report",
    "change the time zone",
    "verify my domain",
    "get a refund",
    "move a workspace",
    "archive old tickets",
    "print an invoice",
    "change the currency",
    "invite a guest",
    "turn off notifications",
    "unlock my account",
    "share a dashboard",
    "set a budget alert",
    "change the plan owner",
    "add a tax id",
    "export audit logs",
    "change the language",
    "close my account",
    "recover a lost key",
    "add a payment card",
    "remove a payment card",
    "change my username",
    "see open invoices",
    "set working hours",
    "add a custom field",
    "bulk edit tickets",
    "reopen a ticket",
    "change the logo",
    "test the webhook",
]
CONTEXTS = [
    "",
    "on the mobile app",
    "as an admin",
    "for a team of ten",
    "without losing data",
    "from the API",
    "on Windows",
    "in the EU region",
    "before the trial ends",
    "after renewal",
    "for a sub-account",
    "on a shared computer",
    "in bulk",
    "for last year",
    "right now",
    "without an email",
    "on the free plan",
    "for a reseller",
    "with a CSV file",
    "offline",
]


def questions(n: int) -> list[str]:
    combos = itertools.product(CONTEXTS, ACTIONS, INTENTS)
    return [f"{i} {a} {c}".strip() + "?" for c, a, i in itertools.islice(combos, n)]


def paraphrase(question: str) -> str:
    return question.lower().rstrip("?")


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)

    def at(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    return (
        f"p50 {at(50):6.2f} ms   p95 {at(95):6.2f} ms   p99 {at(99):6.2f} ms   (n={len(ordered)})"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def setup_django(env: dict) -> None:
    os.environ.update(env)
    import django

    django.setup()


def prepare(entries: int) -> tuple[object, str, object]:
    """The bench tenant, a key, a published feature and ``entries`` cached answers."""
    from datetime import timedelta
    from decimal import Decimal

    from django.utils import timezone
    from django_tenants.utils import schema_context

    from cache.keys import build_keys
    from cache.models import CacheEntry
    from cache.services import Lookup, store_answer
    from gateway.service import _model_identity, resolve_deployments
    from prompts import services as prompt_services
    from prompts.models import Feature
    from prompts.runs import prepare_run
    from retrieval.embedding import embedding_space, get_embedder
    from tenants import services
    from tenants.models import Plan, Tenant

    plan = Plan.objects.filter(slug="bench").first() or services.create_plan(
        name="Bench",
        slug="bench",
        monthly_token_limit=10**12,
        monthly_spend_limit=Decimal(10**7),
        requests_per_minute=10**7,
        tokens_per_minute=10**9,
    )
    tenant = Tenant.objects.filter(slug="bench-cache").first() or services.provision_tenant(
        name="Bench cache", slug="bench-cache", plan=plan
    )
    key = services.create_api_key(tenant=tenant, name="bench").plaintext
    with schema_context(tenant.schema_name):
        feature = Feature.objects.filter(slug=FEATURE).first()
        if feature is None:
            feature = Feature.objects.create(slug=FEATURE, name="Bench FAQ", model_alias="fast")
            version = prompt_services.create_version(
                feature=feature,
                system="Answer the customer's question in one sentence.",
                user_template="Question: {{ question }}",
                variables=["question"],
                params={"temperature": 0, "max_tokens": 64},
            )
            prompt_services.publish(version=version, actor=prompt_services.SYSTEM)
        seeded = CacheEntry.objects.filter(feature=FEATURE).count()
        texts = questions(entries)
        if seeded < entries:
            print(f"seeding {entries - seeded} entries (embedding them with the local MiniLM)…")
            deployments = resolve_deployments(tenant, "fast")
            embedder, space = get_embedder(), embedding_space()
            todo = texts[seeded:]
            for start in range(0, len(todo), 256):
                batch = todo[start : start + 256]
                vectors = embedder.embed(batch)
                for question, vector in zip(batch, vectors, strict=True):
                    run = prepare_run(
                        tenant=tenant, slug=FEATURE, data={"question": question}, end_user=""
                    )
                    keys = build_keys(
                        tenant_schema=tenant.schema_name,
                        scope=run.cache,
                        request=run.request,
                        model=_model_identity("fast", deployments),
                    )
                    store_answer(
                        scope=run.cache,
                        keys=keys,
                        lookup=Lookup(embedding=[float(x) for x in vector], embedder=space),
                        model="fast",
                        content=f"Simulated answer to: {question}",
                        parsed=None,
                        deployment=deployments[0].name,
                        provider_model=deployments[0].model,
                        input_tokens=60,
                        output_tokens=20,
                        call_id=f"seed_{start}",
                    )
            # a long TTL, so that a re-run of the bench reuses them
            CacheEntry.objects.filter(feature=FEATURE).update(
                expires_at=timezone.now() + timedelta(days=30)
            )
    return tenant, key, texts


def _stage_timers() -> dict[str, list[float]]:
    """Wrap the lookup's stages to time each one (the bench's own instrumentation)."""
    from cache import selectors, services

    spent: dict[str, list[float]] = {}

    def timed(owner, name: str, label: str) -> None:
        inner = getattr(owner, name)

        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                spent.setdefault(label, []).append((time.perf_counter() - start) * 1000)

        setattr(owner, name, wrapper)

    timed(selectors, "exact_entry", "exact query")
    timed(services, "_embed", "embed the input")
    timed(selectors, "nearest_entry", "nearest-entry query")
    timed(services, "_usable", "source check")
    return spent


def bench_lookup(tenant, texts: list[str], n: int) -> None:
    from django.db import connection
    from django_tenants.utils import schema_context

    from cache.keys import build_keys
    from cache.services import lookup_answer
    from gateway.service import _model_identity, resolve_deployments
    from prompts.runs import prepare_run

    deployments = resolve_deployments(tenant, "fast")
    sample = random.Random(7).sample(texts, min(n, len(texts)))
    with schema_context(tenant.schema_name):
        spent = _stage_timers()
        for label, make in (("exact", lambda q: q), ("semantic", paraphrase)):
            samples, hits = [], 0
            spent.clear()
            for question in sample:
                run = prepare_run(
                    tenant=tenant, slug=FEATURE, data={"question": make(question)}, end_user=""
                )
                keys = build_keys(
                    tenant_schema=tenant.schema_name,
                    scope=run.cache,
                    request=run.request,
                    model=_model_identity("fast", deployments),
                )
                start = time.perf_counter()
                found = lookup_answer(scope=run.cache, keys=keys)
                samples.append((time.perf_counter() - start) * 1000)
                hits += found.layer == label
            print(
                f"  lookup alone, {label:8} hit: {percentiles(samples)}  hits {hits}/{len(sample)}"
            )
            for stage, times in spent.items():
                print(f"      {stage:20} {percentiles(times)}")
        with connection.cursor() as cursor:
            cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            print("  pgvector", cursor.fetchone()[0])


def bench_http(url: str, key: str, texts: list[str], n: int) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    endpoint = f"{url}/api/v1/features/{FEATURE}/runs"
    sample = random.Random(11).sample(texts, min(n, len(texts)))
    with httpx.Client(timeout=30) as client:
        for question in sample[:30]:  # warm up: connections, the embedder, PII models
            client.post(endpoint, json={"input": {"question": question}}, headers=headers)
        for label, make in (("exact", lambda q: q), ("semantic", paraphrase)):
            samples, hits = [], 0
            for question in sample:
                start = time.perf_counter()
                response = client.post(
                    endpoint, json={"input": {"question": make(question)}}, headers=headers
                )
                samples.append((time.perf_counter() - start) * 1000)
                response.raise_for_status()
                hits += response.headers.get("X-Switchboard-Cache") == label
            print(
                f"  HTTP run,     {label:8} hit: {percentiles(samples)}  hits {hits}/{len(sample)}"
            )
        samples = []
        for i in range(min(n, 200)):
            body = {"input": {"question": f"Unseen question number {i} about invoices?"}}
            start = time.perf_counter()
            client.post(endpoint, json=body, headers=headers).raise_for_status()
            samples.append((time.perf_counter() - start) * 1000)
        print(f"  HTTP run,     miss (simulator, 0 ms): {percentiles(samples)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--var-dir", default=str(ROOT / "var" / "bench-cache"))
    args = parser.parse_args()

    sim_port, web_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"OPENAI_API_KEY", "ANTHROPIC_API_KEY"}}
    env.pop("DATABASE_URL", None)
    env.update(
        SWITCHBOARD_VAR_DIR=args.var_dir,
        SWITCHBOARD_SIMULATOR_URL=f"http://127.0.0.1:{sim_port}",
        SWITCHBOARD_BROKER_DIR=tempfile.mkdtemp(prefix="bench-cache-broker-"),
        DJANGO_SETTINGS_MODULE="config.settings",
        LOG_LEVEL="WARNING",
    )
    Path(args.var_dir).mkdir(parents=True, exist_ok=True)
    subprocess.run([PY, "manage.py", "migrate_schemas", "-v", "0"], cwd=ROOT, env=env, check=True)
    setup_django(env)
    tenant, key, texts = prepare(args.entries)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; {len(texts)} entries in one feature scope"
    )
    bench_lookup(tenant, texts, args.requests)

    procs = [
        subprocess.Popen(
            [PY, "-m", "gateway.simulator", "--port", str(sim_port)],
            cwd=ROOT,
            env=env,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [
                *(PY, "-m", "uvicorn", "config.asgi:application", "--port", str(web_port)),
                *("--workers", "1", "--no-access-log", "--log-level", "warning"),
            ],
            cwd=ROOT,
            env=env,
        ),
    ]
    try:
        url = f"http://127.0.0.1:{web_port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code < 500:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        bench_http(url, key, texts, args.requests)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=20)
        subprocess.run([PY, "-m", "config.embedded", "stop"], cwd=ROOT, env=env, check=False)


if __name__ == "__main__":
    main()
