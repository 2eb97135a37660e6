"""Usage dashboard and usage API at a million usage records in one tenant: from the rollups
versus aggregating the records (what the selectors did before rollups), the time to build the
rollups per hour of data, and what maintaining them adds to a settlement batch.

Runs against a scratch database on the configured server (embedded by default), which it creates
and drops. Usage: .venv/bin/python scripts/bench_dashboard.py [--rows 1000000] [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Synthetic records over the last 30 days (up to now, so the open hour has records too): 8
# features, 4 aliases with 2 deployments each, 5,000 end users (a fifth of calls name none),
# statuses and flags at plausible rates, latencies log-uniform over about two decades.
_GENERATE = """
INSERT INTO usage_usagerecord (
    call_id, request_id, created_at, api_key_id, api_key_prefix, end_user, feature, mode,
    endpoint, alias, deployment, provider, provider_request_id, prompt_version_id, variant,
    input_tokens, output_tokens, tokens_estimated, cost, tokens_saved, total_ms, ttft_ms,
    latency_ms, attempts, cache_hit, fallback_used, degraded, status, error_type, http_status,
    retrieved_chunks)
SELECT 'bench_' || g, 'req_' || g, %(start)s + random() * %(span)s * interval '1 second', NULL, '',
       CASE WHEN r.u < 0.2 THEN '' ELSE 'user-' || (random() * 5000)::int END,
       (ARRAY['summarize','classify','extract','answer','translate','draft','direct','tag'])
           [1 + g %% 8],
       'sync', 'chat', a.alias, a.alias || '-' || (g / 32) %% 2, 'openai', '', NULL, '',
       (random() * 2000)::int, (random() * 500)::int, false, round((random() * 0.01)::numeric, 8),
       CASE WHEN r.hit THEN 300 ELSE 0 END, r.total, NULL,
       jsonb_build_object('total', r.total, 'guard', r.total / 50, 'admission', r.total / 80,
                          'provider', r.total * 0.9),
       1, r.hit, r.s < 0.05, r.s > 0.98,
       CASE WHEN r.s < 0.03 THEN 'failed' WHEN r.s < 0.05 THEN 'refused'
            WHEN r.s > 0.99 THEN 'lost' WHEN r.s > 0.98 THEN 'degraded' ELSE 'ok' END,
       '', 200, '[]'::jsonb
FROM generate_series(%(first)s, %(last)s) AS g
CROSS JOIN LATERAL (
    SELECT random() + g * 0 AS u, random() + g * 0 AS s, random() + g * 0 < 0.1 AS hit,
           round(exp(2 + random() * 5 + g * 0)::numeric, 3)::float8 AS total
) AS r
CROSS JOIN LATERAL (
    SELECT (ARRAY['fast', 'smart', 'cheap', 'vision'])[1 + (g / 8) %% 4] AS alias
) AS a
"""

_STAGES = ("total", "ttft", "guard", "admission", "provider", "output")


def raw_dashboard(start, end) -> dict:
    """The dashboard as it was computed before rollups: aggregating the records."""
    from django.db import connection
    from django.db.models import Count, F, Q, Sum
    from django.db.models.functions import TruncDay

    from usage.models import UsageRecord
    from usage.rollups import day_bounds

    since, until = day_bounds(start)[0], day_bounds(end)[1]
    rows = UsageRecord.objects.filter(created_at__gte=since, created_at__lt=until)
    totals = rows.aggregate(**_raw_measures(Count, Q, Sum))
    percentiles = []
    with connection.cursor() as cursor:
        for stage in _STAGES:
            cursor.execute(
                "SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP "
                "(ORDER BY (latency_ms->>%s)::float) FROM usage_usagerecord "
                "WHERE created_at >= %s AND created_at < %s AND latency_ms ? %s",
                [stage, since, until, stage],
            )
            percentiles.append(cursor.fetchone()[0])
    tokens = Sum(F("input_tokens") + F("output_tokens"))
    daily = list(
        rows.annotate(day=TruncDay("created_at"))
        .values("day", "feature")
        .annotate(cost=Sum("cost"), tokens=tokens, requests=Count("id"))
        .order_by("day", "feature")
    )
    by_model = list(
        rows.values("alias")
        .annotate(cost=Sum("cost"), requests=Count("id"), tokens=tokens)
        .order_by("-cost")
    )
    top = list(
        rows.exclude(end_user="")
        .values("end_user")
        .annotate(cost=Sum("cost"), requests=Count("id"))
        .order_by("-cost")[:10]
    )
    return {"totals": totals, "p": percentiles, "daily": daily, "models": by_model, "top": top}


def raw_summary(start, end, group_by: str) -> dict:
    """``GET /api/v1/usage`` as it was computed before rollups."""
    from django.db.models import Count, F, Q, Sum
    from django.db.models.functions import TruncDay

    from usage.models import UsageRecord
    from usage.rollups import day_bounds

    since, until = day_bounds(start)[0], day_bounds(end)[1]
    rows = UsageRecord.objects.filter(created_at__gte=since, created_at__lt=until)
    measures = _raw_measures(Count, Q, Sum)
    totals = rows.aggregate(**measures)
    groups = []
    if group_by == "day":
        groups = list(rows.annotate(key=TruncDay("created_at")).values("key").annotate(**measures))
    elif group_by != "none":
        field = {"model": "alias"}.get(group_by, group_by)
        groups = list(rows.annotate(key=F(field)).values("key").annotate(**measures))
    return {"totals": totals, "groups": groups}


def _raw_measures(Count, Q, Sum) -> dict:
    return {
        "requests": Count("id"),
        "input_tokens": Sum("input_tokens"),
        "output_tokens": Sum("output_tokens"),
        "cost": Sum("cost"),
        "errors": Count("id", filter=Q(status__in=["failed", "interrupted", "lost"])),
        "refused": Count("id", filter=Q(status="refused")),
        "cache_hits": Count("id", filter=Q(cache_hit=True)),
        "degraded": Count("id", filter=Q(degraded=True)),
        "fallbacks": Count("id", filter=Q(fallback_used=True)),
    }


def _timed(fn, runs: int) -> tuple[float, float]:
    fn()  # warm: plans and caches, as a dashboard that is looked at regularly
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(0.95 * len(samples)))]


def _machine(cursor) -> str:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    cursor.execute("SHOW server_version")
    return (
        f"{os.cpu_count()} cores (nproc), {cpu}, Python {platform.python_version()}, "
        f"PostgreSQL {cursor.fetchone()[0]}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=15, help="timed runs per query")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument(
        "--skip-records", action="store_true", help="time the rollup queries only (no baseline)"
    )
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection, transaction
    from django.utils import timezone
    from django_tenants.utils import schema_context

    settings.DATABASES["default"]["TEST"]["NAME"] = "bench_dashboard"
    creation = connection.creation
    creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        from gateway.records import CallRecord
        from tenants import services as tenant_services
        from usage import rollups, selectors, services

        tenant = tenant_services.provision_tenant(name="Bench", slug="bench")
        now = timezone.now()
        today = now.date()
        start_day = today - timedelta(days=args.days - 1)
        span_start = rollups.day_bounds(start_day)[0]
        span = (now - span_start).total_seconds()
        with schema_context(tenant.schema_name), connection.cursor() as cursor:
            print(_machine(cursor), flush=True)
            started = time.perf_counter()
            chunk = 100_000
            for first in range(1, args.rows + 1, chunk):
                last = min(args.rows, first + chunk - 1)
                cursor.execute(
                    _GENERATE, {"start": span_start, "span": span, "first": first, "last": last}
                )
            cursor.execute("ANALYZE usage_usagerecord")
            print(f"generated {args.rows:,} records in {time.perf_counter() - started:.1f} s")

            started = time.perf_counter()
            days = rollups.rebuild_rollups()
            built = time.perf_counter() - started
            hours = (now - span_start).total_seconds() / 3600
            cursor.execute("ANALYZE usage_usagehourly")
            cursor.execute("ANALYZE usage_usagedailyenduser")
            cursor.execute("ANALYZE usage_usagelatencyhourly")
            counts = {}
            for table in ("usagehourly", "usagedailyenduser", "usagelatencyhourly"):
                cursor.execute(f"SELECT count(*) FROM usage_{table}")  # noqa: S608 - constant
                counts[table] = cursor.fetchone()[0]
            print(
                f"rollups built for {len(days)} days in {built:.1f} s: "
                f"{built / hours * 1000:.1f} ms per hour of data "
                f"({args.rows / hours:,.0f} records per hour); rows: {counts}"
            )

            rolled = selectors.usage_summary(start=start_day, end=today, group_by="none")
            raw = raw_summary(start_day, today, "none")["totals"]
            assert rolled["totals"]["requests"] == raw["requests"] == args.rows
            assert rolled["totals"]["cost"] == format(raw["cost"], "f")

            results = []
            cases = [("dashboard", lambda s, e: selectors.dashboard(start=s, end=e), raw_dashboard)]
            for group_by in ("none", "feature", "model", "end_user", "day"):
                cases.append(
                    (
                        f"usage API, group_by={group_by}",
                        lambda s, e, g=group_by: selectors.usage_summary(
                            start=s, end=e, group_by=g
                        ),
                        lambda s, e, g=group_by: raw_summary(s, e, g),
                    )
                )
            for name, from_rollups, from_records in cases:
                fast = _timed(lambda f=from_rollups: f(start_day, today), args.runs)
                slow = (
                    (float("nan"), float("nan"))
                    if args.skip_records
                    else _timed(lambda f=from_records: f(start_day, today), max(3, args.runs // 3))
                )
                results.append((name, fast, slow))
                print(
                    f"{name:32} rollups p50 {fast[0]:8.1f} ms p95 {fast[1]:8.1f} ms | "
                    f"records p50 {slow[0]:8.1f} ms p95 {slow[1]:8.1f} ms",
                    flush=True,
                )

            # What maintaining the rollups adds to the recorder's batches of 200 calls.
            batch_ms, rollup_ms = [], []
            for n in range(20):
                records = [
                    CallRecord(
                        call_id=f"settle-{n}-{i}",
                        request_id="bench",
                        created_at=timezone.now(),
                        api_key_id=None,
                        api_key_prefix="",
                        mode="sync",
                        endpoint="chat",
                        alias="fast",
                        feature="summarize",
                        end_user=f"user-{i}",
                        input_tokens=100,
                        output_tokens=20,
                        latency_ms={"total": 120.0, "provider": 100.0, "guard": 1.5},
                    )
                    for i in range(200)
                ]
                started = time.perf_counter()
                services.record_usage_batch(records)
                batch_ms.append((time.perf_counter() - started) * 1000)
                with transaction.atomic():
                    started = time.perf_counter()
                    rollups.add_records([r.call_id for r in records])
                    rollup_ms.append((time.perf_counter() - started) * 1000)
                    transaction.set_rollback(True)  # measured only, not counted twice
            print(
                f"settlement batch of 200: median {statistics.median(batch_ms):.1f} ms, of which "
                f"rollup upserts median {statistics.median(rollup_ms):.1f} ms"
            )

        print("\n| query (30 days, 1 tenant) | rollups p50 | p95 | records p50 | p95 |")
        print("|---|---|---|---|---|")
        for name, fast, slow in results:
            print(
                f"| {name} | {fast[0]:.1f} ms | {fast[1]:.1f} ms | {slow[0]:.0f} ms "
                f"| {slow[1]:.0f} ms |"
            )
    finally:
        connection.set_schema_to_public()
        creation.destroy_test_db("bench_dashboard", verbosity=0)


if __name__ == "__main__":
    main()
