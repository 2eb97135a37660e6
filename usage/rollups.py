"""Rollups of the usage records: hourly sums per feature, model and deployment, daily sums per
end user, and hourly latency histograms per stage. The dashboard and the usage API read these,
never the records, so their cost grows with hours and features rather than with calls.

Two writers, one set of SQL statements (each aggregates raw records selected by a condition):

- ``add_records`` runs inside the transaction that inserts the records (``record_usage_batch``)
  and *adds* their sums with ``INSERT ... ON CONFLICT DO UPDATE``. A record and its contribution
  commit together, so the rollups equal the sums of the committed records at every snapshot; a
  late record (the sweeper's ``lost`` calls, a long stream) simply adds to its own, older hour.
- ``rebuild_day`` *replaces* one UTC day's rollups with a recomputation from its records: the
  backfill for records written before rollups existed, and a repair. Safe to rerun; a worker
  that dies mid-way rolls its transaction back.

The two are serialised per tenant by an advisory lock, shared for ``add_records`` (settlements
do not wait for each other) and exclusive for ``rebuild_day``. A settlement either commits before
the rebuild's statements take their snapshots (and is recomputed), or waits and adds to the
rebuilt rows afterwards: never both, never neither.

Latency buckets are log-spaced, 8 per octave from 0.01 ms: bucket k >= 1 holds
[0.01 * 2**((k-1)/8), 0.01 * 2**(k/8)) ms and is reported at its geometric middle, so a percentile
read from the rollups is within a factor 2**(1/16) (+4.4 % / -4.2 %) of the exact nearest-rank
percentile of the records. Bucket 0 holds [0, 0.01) ms; the last bucket everything from
2**27 * 0.01 ms (about 22 minutes) up, reported at its lower edge.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta

from django.db import connection
from django.utils import timezone
from psycopg import sql

STAGES = ("total", "ttft", "guard", "admission", "provider", "output")

LATENCY_LOW_MS = 0.01
BUCKETS_PER_OCTAVE = 8
LAST_BUCKET = 27 * BUCKETS_PER_OCTAVE + 1
ERRORED = ("failed", "interrupted", "lost")

# The sums one rollup row holds, over the raw records of its group.
_MEASURES = sql.SQL("""
    count(*), count(*) FILTER (WHERE status = ANY(%(errored)s)),
    count(*) FILTER (WHERE status = 'refused'), count(*) FILTER (WHERE cache_hit),
    count(*) FILTER (WHERE fallback_used), count(*) FILTER (WHERE degraded),
    coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0),
    coalesce(sum(tokens_saved), 0), coalesce(sum(cost), 0)
""")
_MEASURE_COLUMNS = sql.SQL(
    "calls, errors, refused, cache_hits, fallbacks, degraded, input_tokens, output_tokens, "
    "tokens_saved, cost"
)
_ADD_MEASURES = sql.SQL(", ").join(
    sql.SQL("{c} = r.{c} + EXCLUDED.{c}").format(c=sql.Identifier(name))
    for name in (
        "calls errors refused cache_hits fallbacks degraded input_tokens output_tokens "
        "tokens_saved cost"
    ).split()
)
_HOUR = sql.SQL("date_trunc('hour', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'")

# ORDER BY: rows are locked in key order, so concurrent writers cannot deadlock on them.
_HOURLY = sql.SQL("""
INSERT INTO usage_usagehourly AS r (hour, feature, alias, deployment, {columns})
SELECT {hour}, feature, alias, deployment, {measures} FROM usage_usagerecord WHERE {where}
GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
ON CONFLICT (hour, feature, alias, deployment) DO UPDATE SET {add}
""")
_END_USERS = sql.SQL("""
INSERT INTO usage_usagedailyenduser AS r (day, end_user, {columns})
SELECT (created_at AT TIME ZONE 'UTC')::date, end_user, {measures}
FROM usage_usagerecord WHERE {where}
GROUP BY 1, 2 ORDER BY 1, 2
ON CONFLICT (day, end_user) DO UPDATE SET {add}
""")
_LATENCY = sql.SQL("""
INSERT INTO usage_usagelatencyhourly AS r (hour, stage, bucket, calls)
SELECT {hour}, stage.key,
       CASE WHEN stage.value::float8 < %(low)s THEN 0
            ELSE least(floor(%(per_octave)s * ln(stage.value::float8 / %(low)s) / ln(2))::int + 1,
                       %(last)s) END,
       count(*)
FROM usage_usagerecord, jsonb_each(latency_ms) AS stage
WHERE {where} AND stage.key = ANY(%(stages)s) AND jsonb_typeof(stage.value) = 'number'
GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
ON CONFLICT (hour, stage, bucket) DO UPDATE SET calls = r.calls + EXCLUDED.calls
""")
_BY_CALL_ID = sql.SQL("call_id = ANY(%(call_ids)s)")
_BY_TIME = sql.SQL("created_at >= %(since)s AND created_at < %(until)s")

_LOCK_SHARED = "SELECT pg_advisory_xact_lock_shared(hashtextextended(%s, 0))"
_LOCK_EXCLUSIVE = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"


def _statements(where: sql.Composable) -> list[str]:
    parts = {"columns": _MEASURE_COLUMNS, "measures": _MEASURES, "add": _ADD_MEASURES}
    return [
        _HOURLY.format(hour=_HOUR, where=where, **parts).as_string(),
        _END_USERS.format(where=where, **parts).as_string(),
        _LATENCY.format(hour=_HOUR, where=where).as_string(),
    ]


_ADD = _statements(_BY_CALL_ID)
_REBUILD = _statements(_BY_TIME)
_PARAMS = {
    "errored": list(ERRORED),
    "stages": list(STAGES),
    "low": LATENCY_LOW_MS,
    "per_octave": BUCKETS_PER_OCTAVE,
    "last": LAST_BUCKET,
}


def _lock_key() -> str:
    return f"usage_rollup:{connection.schema_name}"


def add_records(call_ids: list[str]) -> None:
    """Add the sums of these (just inserted, same transaction) records to the rollups of the
    current tenant schema. Must run inside the transaction that inserted them."""
    if not call_ids:
        return
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_SHARED, [_lock_key()])
        for statement in _ADD:
            cursor.execute(statement, {**_PARAMS, "call_ids": call_ids})


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min).replace(tzinfo=timezone.get_fixed_timezone(0))
    return start, start + timedelta(days=1)


def rebuild_day(day: date) -> None:
    """Replace one UTC day's rollups (current tenant schema) with sums recomputed from its
    usage records, in one transaction. Only for days whose records are all still there: a day
    whose records were pruned would be rebuilt empty."""
    from django.db import transaction

    since, until = day_bounds(day)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_LOCK_EXCLUSIVE, [_lock_key()])
        cursor.execute(
            "DELETE FROM usage_usagehourly WHERE hour >= %s AND hour < %s", [since, until]
        )
        cursor.execute("DELETE FROM usage_usagedailyenduser WHERE day = %s", [day])
        cursor.execute(
            "DELETE FROM usage_usagelatencyhourly WHERE hour >= %s AND hour < %s", [since, until]
        )
        for statement in _REBUILD:
            cursor.execute(statement, {**_PARAMS, "since": since, "until": until})


def record_days() -> list[date]:
    """Every UTC day from the oldest to the newest usage record of the current schema."""
    from django.db.models import Max, Min

    from usage.models import UsageRecord

    span = UsageRecord.objects.aggregate(first=Min("created_at"), last=Max("created_at"))
    if span["first"] is None:
        return []
    utc = timezone.get_fixed_timezone(0)
    first, last = span["first"].astimezone(utc).date(), span["last"].astimezone(utc).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def rebuild_rollups(*, since: date | None = None, until: date | None = None) -> list[date]:
    """Rebuild the rollups of every UTC day in [since, until] that has usage records (current
    schema), one transaction per day so settlements wait at most one day's recomputation.
    Days before the oldest record are left alone: their records may have been pruned."""
    days = [
        day
        for day in record_days()
        if (since is None or day >= since) and (until is None or day <= until)
    ]
    for day in days:
        rebuild_day(day)
    return days


def bucket_value(bucket: int) -> float:
    """The latency (ms) a bucket stands for: its geometric middle (see the module docstring)."""
    if bucket <= 0:
        return LATENCY_LOW_MS / 2
    if bucket >= LAST_BUCKET:
        return LATENCY_LOW_MS * 2 ** ((LAST_BUCKET - 1) / BUCKETS_PER_OCTAVE)
    return LATENCY_LOW_MS * 2 ** ((bucket - 0.5) / BUCKETS_PER_OCTAVE)


def percentile_from_buckets(counts: list[tuple[int, int]], q: float) -> float:
    """The nearest-rank q-percentile of a histogram given as (bucket, count) in bucket order."""
    total = sum(count for _, count in counts)
    rank = max(1, math.ceil(q * total))
    seen = 0
    for bucket, count in counts:
        seen += count
        if seen >= rank:
            return bucket_value(bucket)
    raise ValueError("empty histogram")
