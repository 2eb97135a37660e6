"""Usage records for the usage tests, written the way the gateway writes them (through
``record_usage_batch``), and the figures expected of them computed from the records alone."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db.models import Count, F, Q, Sum
from django.db.models.functions import TruncDay, TruncHour

from gateway.records import CallRecord
from usage.models import UsageRecord

ERRORED = ("failed", "interrupted", "lost")


def call_record(call_id: str, **fields) -> CallRecord:
    """A finished call's record; any CallRecord field may be given."""
    values = {
        "call_id": call_id,
        "request_id": f"req-{call_id}",
        "created_at": datetime(2024, 2, 29, 12, tzinfo=UTC),
        "api_key_id": None,
        "api_key_prefix": "",
        "end_user": "",
        "feature": "direct",
        "mode": "sync",
        "endpoint": "chat",
        "alias": "fast",
    }
    values.update(fields)
    return CallRecord(**values)


def varied_records(prefix: str, count: int, *, start: datetime, hours: int, seed: int = 8):
    """``count`` calls spread over ``hours`` hours from ``start``, with every dimension and flag
    varied, plus calls exactly on and just before hour and day boundaries."""
    rng = random.Random(seed)
    moments = [start + timedelta(seconds=rng.uniform(0, hours * 3600)) for _ in range(count)]
    for hour in range(hours + 1):
        edge = start + timedelta(hours=hour)
        moments += [edge, edge - timedelta(microseconds=1)]
    records = []
    for i, moment in enumerate(moments):
        status = rng.choice(["ok", "ok", "ok", "degraded", "refused", "failed", "lost"])
        latency = {"total": round(rng.lognormvariate(5, 1.2), 3)}
        if status != "refused":
            latency |= {"guard": rng.uniform(0.001, 2), "provider": rng.lognormvariate(4.5, 1)}
        if rng.random() < 0.3:
            latency["ttft"] = rng.uniform(5, 500)
        records.append(
            call_record(
                f"{prefix}-{i}",
                created_at=moment,
                feature=rng.choice(["summarize", "classify", "direct"]),
                alias=rng.choice(["fast", "smart", ""]),
                deployment=rng.choice(["openai-a", "anthropic-b", ""]),
                end_user=rng.choice(["", "alice", "bob", "carol", "dan", "erin", "frank"]),
                status=status,
                input_tokens=rng.randint(0, 4000),
                output_tokens=rng.randint(0, 800),
                tokens_saved=rng.choice([0, 0, 120]),
                cost=Decimal(rng.randint(0, 10**6)) / Decimal(10**8),
                cache_hit=rng.random() < 0.2,
                fallback_used=rng.random() < 0.15,
                degraded=status == "degraded",
                latency_ms=latency,
            )
        )
    rng.shuffle(records)  # written out of order: later hours before earlier ones
    return records


# --- expected figures, from the records themselves (no rollup code involved) ---------------------

RAW_MEASURES = {
    "requests": Count("id"),
    "input_tokens": Sum("input_tokens"),
    "output_tokens": Sum("output_tokens"),
    "cost": Sum("cost"),
    "errors": Count("id", filter=Q(status__in=ERRORED)),
    "refused": Count("id", filter=Q(status="refused")),
    "cache_hits": Count("id", filter=Q(cache_hit=True)),
    "degraded": Count("id", filter=Q(degraded=True)),
    "fallbacks": Count("id", filter=Q(fallback_used=True)),
}


def raw_rows(start, end):
    """Records of the whole UTC days [start, end]."""
    since = datetime(start.year, start.month, start.day, tzinfo=UTC)
    until = datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1)
    return UsageRecord.objects.filter(created_at__gte=since, created_at__lt=until)


def _shown(row: dict) -> dict:
    return {k: format(v or Decimal(0), "f") if k == "cost" else (v or 0) for k, v in row.items()}


def expected_totals(start, end) -> dict:
    return _shown(raw_rows(start, end).aggregate(**RAW_MEASURES))


def expected_groups(start, end, group_by: str) -> list[dict]:
    if group_by == "none":
        return []
    rows = raw_rows(start, end)
    if group_by == "day":
        rows = rows.annotate(key=TruncDay("created_at", tzinfo=UTC))
    else:
        rows = rows.annotate(key=F({"model": "alias"}.get(group_by, group_by)))
    out = []
    for row in rows.values("key").annotate(**RAW_MEASURES).order_by("key"):
        key = row.pop("key")
        out.append({"key": key.date().isoformat() if group_by == "day" else key, **_shown(row)})
    return out


def expected_hourly(start, end) -> dict:
    """(hour, feature, alias, deployment) -> (calls, input tokens, cost) from the records."""
    return {
        (r["hour"], r["feature"], r["alias"], r["deployment"]): (r["n"], r["i"], r["c"])
        for r in raw_rows(start, end)
        .annotate(hour=TruncHour("created_at", tzinfo=UTC))
        .values("hour", "feature", "alias", "deployment")
        .annotate(n=Count("id"), i=Sum("input_tokens"), c=Sum("cost"))
    }
