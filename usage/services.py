"""Admission (rate limits and budgets) before a call, settlement and usage records after it.

Race-free budgets: admission reserves the call's maximum (estimated tokens, maximum cost) against
every monthly budget that applies, in one statement that takes the counters' row locks; the
caller checks the figures it returns and undoes the whole admission on a refusal. Settlement
replaces the reservation with the actual use. Concurrent calls therefore cannot together
overspend a budget by more than one call's reservation.

Rate limits count requests and estimated tokens in fixed one-minute windows, per tenant, per
API key, per feature and per end user (see ``usage.ratelimit``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

import redis
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q, Sum
from django.utils import timezone
from django_tenants.utils import schema_context
from psycopg import sql

from gateway.errors import InvalidRequest, QuotaExceeded
from gateway.records import CallRecord
from usage import ratelimit
from usage.limits import (
    MONTHLY,
    PER_MINUTE,
    LimitSpec,
    forget_limits,
    limits_of,
    period_bounds,
    period_of,
)
from usage.models import (
    BudgetCounter,
    Limit,
    RateWindow,
    Reservation,
    SoftLimitNotice,
    UsageRecord,
)

__all__ = [
    "Admission",
    "LimitSpec",
    "admit",
    "forget_limits",
    "on_quota_exceeded",
    "on_soft_limit_crossed",
    "period_bounds",
    "period_of",
    "prune_admission_state",
    "record_usage",
    "record_usage_batch",
    "remove_limit",
    "set_limit",
    "sweep_lost_reservations",
]

logger = logging.getLogger(__name__)

# How long a reservation may stay unsettled before the sweeper treats its call as lost.
RESERVATION_TTL = timedelta(minutes=10)
# Settled reservations are kept this long so that a retried call id (an async job re-run after
# its worker died) finds its first reservation instead of taking a second one.
SETTLED_RESERVATION_KEPT = timedelta(days=1)
RATE_WINDOWS_KEPT = timedelta(minutes=5)


@dataclass
class Admission:
    """What admission tells the gateway about a call it let through."""

    reservation_id: int | None
    warnings: list[str] = field(default_factory=list)  # e.g. "tenant.monthly_tokens at 83%"
    headers: dict[str, str] = field(default_factory=dict)  # X-RateLimit-*, quota warning


# --- notices ------------------------------------------------------------------------------------

# (schema, scope key, metric, period) already recorded by this process: spares the hot path a
# query on every call made above a soft limit.
_noticed: set[tuple[str, str, str, str]] = set()


def on_soft_limit_crossed(*, tenant, spec: LimitSpec, period: str, percent: int) -> bool:
    """Record that a soft limit was crossed, once per scope, metric and period, and notify the
    tenant (webhook ``quota.soft_limit``) the first time. Returns True when newly recorded."""
    noticed = (tenant.schema_name, spec.scope_key, spec.metric, period)
    if noticed in _noticed:
        return False
    from jobs.webhooks import emit

    with schema_context(tenant.schema_name), transaction.atomic():
        _, created = SoftLimitNotice.objects.get_or_create(
            scope_key=spec.scope_key,
            metric=spec.metric,
            period=period,
            defaults={"percent": percent},
        )
        if created:
            logger.warning(
                "soft limit crossed",
                extra={"tenant": tenant.slug, "limit": spec.label, "percent": percent},
            )
            emit(
                "quota.soft_limit",
                {"limit": spec.label, "percent": percent, "period": period, "hard": str(spec.hard)},
            )
    _noticed.add(noticed)
    return created


def on_quota_exceeded(*, tenant, refusal: QuotaExceeded, period: str) -> bool:
    """A hard limit refused a call: recorded and notified (``quota.exceeded``) once per limit
    and period. Returns True when newly recorded."""
    noticed = (tenant.schema_name, refusal.param or "", "exceeded", period)
    if noticed in _noticed:
        return False
    from jobs.webhooks import emit

    with schema_context(tenant.schema_name), transaction.atomic():
        _, created = SoftLimitNotice.objects.get_or_create(
            scope_key=refusal.param or "",
            metric="exceeded",
            period=period,
            defaults={"percent": 100},
        )
        if created:
            emit(
                "quota.exceeded",
                {"limit": refusal.param, "message": refusal.message, "period": period},
            )
    _noticed.add(noticed)
    return created


# --- admission ----------------------------------------------------------------------------------


def _scope_filter(scope_key: str) -> Q:
    if scope_key == "tenant":
        return Q()
    kind, _, value = scope_key.partition(":")
    if kind == "api_key":
        return Q(api_key_id=int(value))
    if kind == "feature":
        return Q(feature=value)
    return Q(end_user=value)


def _ensure_counters(scope_keys: list[str], period: str) -> None:
    """Create the month's counters that do not exist yet (rare: once per scope and month)."""
    existing = set(
        BudgetCounter.objects.filter(scope_key__in=scope_keys, period=period).values_list(
            "scope_key", flat=True
        )
    )
    start, end = period_bounds(period)
    for key in scope_keys:
        if key in existing:
            continue
        # A budget that starts being tracked mid-month starts from what was already used.
        totals = UsageRecord.objects.filter(
            _scope_filter(key), created_at__gte=start, created_at__lt=end
        ).aggregate(i=Sum("input_tokens"), o=Sum("output_tokens"), c=Sum("cost"))
        try:
            with transaction.atomic():
                BudgetCounter.objects.create(
                    scope_key=key,
                    period=period,
                    tokens_used=(totals["i"] or 0) + (totals["o"] or 0),
                    spend_used=totals["c"] or Decimal(0),
                )
        except IntegrityError:
            pass  # created concurrently: fine


# One statement, one round trip, atomic on its own: count the request in every PostgreSQL rate
# window, reserve the call's maximum on every budget counter (row locks serialise concurrent
# callers, and each sees the others' committed reservations), and write the reservation. The
# caller checks the returned figures and, on a refusal, undoes exactly this (_UNDO_SQL).
_ADMIT_SQL = """
WITH rate AS (
    INSERT INTO {schema}.usage_ratewindow (scope_key, window_start, requests, tokens)
    SELECT k, %(window)s, 1, %(tokens)s FROM unnest(%(rate_keys)s::text[]) AS k
    ON CONFLICT (scope_key, window_start) DO UPDATE SET
        requests = usage_ratewindow.requests + 1,
        tokens = usage_ratewindow.tokens + EXCLUDED.tokens
    RETURNING scope_key, requests::numeric AS a, tokens::numeric AS b, 0::numeric AS c,
              0::numeric AS d
), budget AS (
    UPDATE {schema}.usage_budgetcounter SET tokens_reserved = tokens_reserved + %(tokens)s,
                                   spend_reserved = spend_reserved + %(spend)s
    WHERE period = %(period)s AND scope_key = ANY(%(budget_keys)s::text[])
      -- a retried call (e.g. an async job after a worker died) keeps its first reservation
      AND NOT EXISTS (SELECT 1 FROM {schema}.usage_reservation WHERE call_id = %(call_id)s)
    RETURNING scope_key, tokens_used::numeric, tokens_reserved::numeric, spend_used,
              spend_reserved
), reservation AS (
    INSERT INTO {schema}.usage_reservation (call_id, request_id, period, scope_keys, tokens, spend,
                                   api_key_id, end_user, feature, created_at, expires_at)
    VALUES (%(call_id)s, %(request_id)s, %(period)s, %(scope_keys_json)s::jsonb, %(tokens)s,
            %(spend)s, %(api_key_id)s, %(end_user)s, %(feature)s, %(now)s, %(expires)s)
    ON CONFLICT (call_id) DO NOTHING
    RETURNING id
)
SELECT 'rate', scope_key, a, b, c, d FROM rate
UNION ALL SELECT 'budget', scope_key, tokens_used, tokens_reserved, spend_used, spend_reserved
    FROM budget
UNION ALL SELECT 'reservation', '', id::numeric, 0, 0, 0 FROM reservation
UNION ALL SELECT 'existing', '', id::numeric, 0, 0, 0 FROM {schema}.usage_reservation
    WHERE call_id = %(call_id)s
-- The commit need not wait for the disk: every caller contends for the tenant's counter row,
-- and a reservation lost in a database crash only means that call settles without one.
UNION ALL SELECT 'config', set_config('synchronous_commit', 'off', true), 0, 0, 0, 0
"""

_UNDO_SQL = """
WITH rate AS (
    UPDATE {schema}.usage_ratewindow SET requests = requests - 1, tokens = tokens - %(tokens)s
    WHERE window_start = %(window)s AND scope_key = ANY(%(rate_keys)s::text[])
), budget AS (
    UPDATE {schema}.usage_budgetcounter SET tokens_reserved = tokens_reserved - %(tokens)s,
                                   spend_reserved = spend_reserved - %(spend)s
    WHERE period = %(period)s AND scope_key = ANY(%(budget_keys)s::text[])
)
DELETE FROM {schema}.usage_reservation WHERE call_id = %(call_id)s AND %(own_reservation)s
"""

_UNDO_RATES_SQL = """
UPDATE {schema}.usage_ratewindow SET requests = requests - 1, tokens = tokens - %(tokens)s
WHERE window_start = %(window)s AND scope_key = ANY(%(rate_keys)s::text[])
"""

_composed: dict[tuple[str, str], str] = {}


def _run(template: str, schema: str, params: dict) -> list[tuple]:
    """Run a statement whose tables are named with their schema (so the connection's
    search_path does not matter and no SET is needed on the hot path)."""
    key = (template, schema)
    statement = _composed.get(key)
    if statement is None:
        statement = sql.SQL(template).format(schema=sql.Identifier(schema)).as_string()
        _composed[key] = statement
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def _budget_check(
    specs: list[LimitSpec], budgets: dict[str, tuple], period: str
) -> tuple[QuotaExceeded | None, list[tuple[LimitSpec, int]]]:
    """The first monthly limit the committed figures (used + reserved, this call's reservation
    included) exceed, and the soft limits they reach."""
    _, reset = period_bounds(period)
    soft: list[tuple[LimitSpec, int]] = []
    for spec in specs:
        tokens_used, tokens_reserved, spend_used, spend_reserved = budgets[spec.scope_key]
        if spec.metric == Limit.Metric.MONTHLY_TOKENS:
            committed = tokens_used + tokens_reserved
            shown = f"{int(tokens_used)} tokens used of {int(spec.hard)}"
        else:
            committed = spend_used + spend_reserved
            shown = f"${spend_used:.4f} spent of ${spec.hard:.2f}"
        if committed > spec.hard:
            return QuotaExceeded(
                f"Monthly limit {spec.label} reached: {shown}; it resets at "
                f"{reset.isoformat().replace('+00:00', 'Z')}.",
                param=spec.label,
            ), soft
        percent = int(committed * 100 / spec.hard) if spec.hard else 100
        if percent >= spec.soft_percent:
            soft.append((spec, percent))
    return None, soft


_known_counters: set[tuple[str, str, str]] = set()


def _count_rates_in_redis(
    tenant, rate_specs: list[LimitSpec], tokens: int, now: datetime
) -> ratelimit.Counts | None:
    """Counts in Redis, or None when Redis is unreachable (PostgreSQL counts instead, so an
    outage of Redis costs rate-limit precision across processes, not availability)."""
    try:
        return ratelimit.check_rates_redis(tenant.schema_name, rate_specs, tokens, now)
    except redis.RedisError:
        logger.warning("redis unreachable: rate limits counted in PostgreSQL", exc_info=True)
        return None


def admit(
    *,
    tenant,
    api_key_id: int | None,
    end_user: str,
    feature: str,
    call_id: str,
    request_id: str,
    estimated_tokens: int,
    max_cost: Decimal,
) -> Admission:
    """Check the call's rate limits and reserve its maximum against every monthly budget.

    Runs in the tenant's schema. Raises ``RateLimited`` (with ``retry_after``) or
    ``QuotaExceeded`` (naming the limit, its use and its reset); then nothing stays counted or
    reserved. One database round trip on the hot path (plus one Redis call with ``REDIS_URL``).
    A call id admitted before (a retried job) keeps its first reservation.
    """
    now = timezone.now()
    period = period_of(now)
    specs = limits_of(tenant).specs(api_key_id=api_key_id, feature=feature, end_user=end_user)
    rate_specs = [s for s in specs if s.metric in PER_MINUTE]
    budget_specs = [s for s in specs if s.metric in MONTHLY]
    redis_counts = None
    if rate_specs and settings.REDIS_URL:
        redis_counts = _count_rates_in_redis(tenant, rate_specs, estimated_tokens, now)
    pg_rate_keys = [] if redis_counts is not None else sorted({s.scope_key for s in rate_specs})
    budget_keys = sorted({s.scope_key for s in budget_specs} | {"tenant"})
    missing = [k for k in budget_keys if (tenant.schema_name, k, period) not in _known_counters]
    if missing:
        with schema_context(tenant.schema_name):
            _ensure_counters(missing, period)
        _known_counters.update((tenant.schema_name, k, period) for k in missing)
    params = {
        "window": ratelimit.window_start(now),
        "tokens": estimated_tokens,
        "spend": max_cost,
        "rate_keys": pg_rate_keys,
        "period": period,
        "budget_keys": budget_keys,
        "call_id": call_id,
        "request_id": request_id,
        "scope_keys_json": json.dumps(budget_keys),
        "api_key_id": api_key_id,
        "end_user": end_user,
        "feature": feature,
        "now": now,
        "expires": now + RESERVATION_TTL,
        "own_reservation": True,
    }

    def undo(undo_sql: str) -> None:
        """A refusal: nothing of this call stays counted or reserved."""
        _run(undo_sql, tenant.schema_name, params)
        if redis_counts:
            ratelimit.uncount_redis(tenant.schema_name, list(redis_counts), estimated_tokens, now)

    rows = _run(_ADMIT_SQL, tenant.schema_name, params)
    counts = redis_counts or {r[1]: (int(r[2]), int(r[3])) for r in rows if r[0] == "rate"}
    rate_refusal = ratelimit.rate_refusal(rate_specs, counts, now) if not redis_counts else None
    existing = next((int(r[2]) for r in rows if r[0] == "existing"), None)
    if existing is not None and not any(r[0] == "reservation" for r in rows):
        # The same call admitted before (a retry): its reservation still holds the budget.
        if rate_refusal is not None:
            undo(_UNDO_RATES_SQL)
            raise rate_refusal
        return Admission(
            reservation_id=existing, headers=ratelimit.rate_headers(rate_specs, counts, now)
        )
    if rate_refusal is not None:
        undo(_UNDO_SQL)
        raise rate_refusal
    budgets = {r[1]: r[2:] for r in rows if r[0] == "budget"}
    if len(budgets) < len(budget_keys):
        # A counter this process believed in is gone (e.g. the schema was recreated).
        _run(_UNDO_SQL, tenant.schema_name, params)
        with schema_context(tenant.schema_name):
            _ensure_counters(budget_keys, period)
        rows = _run(_ADMIT_SQL, tenant.schema_name, params)
        budgets = {r[1]: r[2:] for r in rows if r[0] == "budget"}
    quota_refusal, soft_crossed = _budget_check(budget_specs, budgets, period)
    if quota_refusal is not None:
        undo(_UNDO_SQL)
        on_quota_exceeded(tenant=tenant, refusal=quota_refusal, period=period)
        raise quota_refusal
    reservation_id = next((int(r[2]) for r in rows if r[0] == "reservation"), None)
    if reservation_id is None:
        # The same call id admitted concurrently by another process: that admission holds the
        # reservation, so this one releases what it just reserved and keeps the other's.
        params["own_reservation"] = False
        _run(_UNDO_SQL, tenant.schema_name, params)
        with schema_context(tenant.schema_name):
            reservation_id = (
                Reservation.objects.filter(call_id=call_id).values_list("id", flat=True).first()
            )
    admission = Admission(
        reservation_id=reservation_id,
        headers=ratelimit.rate_headers(rate_specs, counts, now),
    )
    for spec, percent in soft_crossed:
        admission.warnings.append(f"{spec.label} at {percent}%")
        on_soft_limit_crossed(tenant=tenant, spec=spec, period=period, percent=percent)
    if admission.warnings:
        admission.headers["X-Switchboard-Quota-Warning"] = "; ".join(admission.warnings)
    return admission


# --- settlement ---------------------------------------------------------------------------------


def _usage_row(record: CallRecord) -> UsageRecord:
    return UsageRecord(
        call_id=record.call_id,
        request_id=record.request_id,
        created_at=record.created_at,
        api_key_id=record.api_key_id,
        api_key_prefix=record.api_key_prefix,
        end_user=record.end_user,
        feature=record.feature,
        mode=record.mode,
        endpoint=record.endpoint,
        alias=record.alias,
        deployment=record.deployment,
        provider=record.provider,
        provider_request_id=record.provider_request_id,
        prompt_version_id=record.prompt_version_id,
        variant=record.variant,
        input_tokens=record.input_tokens,
        output_tokens=record.output_tokens,
        tokens_estimated=record.tokens_estimated,
        cost=record.cost,
        tokens_saved=record.tokens_saved,
        total_ms=record.latency_ms.get("total", 0.0),
        ttft_ms=record.latency_ms.get("ttft"),
        latency_ms=record.latency_ms,
        attempts=len(record.attempts),
        cache_hit=record.cache_hit,
        fallback_used=record.fallback_used,
        degraded=record.degraded,
        status=record.status,
        error_type=record.error_type,
        http_status=record.http_status,
    )


def _scope_keys_of(record: CallRecord) -> list[str]:
    keys = ["tenant", f"feature:{record.feature}"]
    if record.api_key_id is not None:
        keys.append(f"api_key:{record.api_key_id}")
    if record.end_user:
        keys.append(f"end_user:{record.end_user}")
    return keys


def record_usage_batch(records: list[CallRecord]) -> int:
    """Write usage records (once per call id) and settle their reservations, in one transaction.

    Runs in the tenant's schema. Settlement releases each reservation and adds the actual use to
    the same counters; it is summed per counter and applied last, so the tenant's hot counter
    row is locked once per batch, for the shortest time. Returns how many records were new.
    """
    if not records:
        return 0
    with transaction.atomic():
        ids = [r.call_id for r in records]
        # Locked first: a concurrent settler of the same call (the sweeper against a late
        # recorder) waits here, then finds the usage record and does nothing.
        reservations = {
            r.call_id: r
            for r in Reservation.objects.select_for_update()
            .filter(call_id__in=ids, settled_at__isnull=True)
            .order_by("id")
        }
        existing = set(
            UsageRecord.objects.filter(call_id__in=ids).values_list("call_id", flat=True)
        )
        fresh = {r.call_id: r for r in records if r.call_id not in existing}
        if not fresh:
            return 0
        UsageRecord.objects.bulk_create([_usage_row(r) for r in fresh.values()])
        # (scope, period) -> [tokens_reserved, spend_reserved, tokens_used, spend_used] deltas
        deltas: dict[tuple[str, str], list] = {}

        def add(scope: str, period: str, *values) -> None:
            row = deltas.setdefault((scope, period), [0, Decimal(0), 0, Decimal(0)])
            for i, value in enumerate(values):
                row[i] += value

        settled = []
        for call_id, record in fresh.items():
            tokens = record.input_tokens + record.output_tokens
            reservation = reservations.get(call_id)
            if reservation is not None:
                settled.append(reservation.id)
                for scope in reservation.scope_keys:
                    add(
                        scope,
                        reservation.period,
                        -reservation.tokens,
                        -reservation.spend,
                        tokens,
                        record.cost,
                    )
            elif tokens or record.cost:
                # No reservation (a call refused before admission uses nothing; this is a
                # reservation lost with an asynchronous commit): count on existing counters.
                for scope in _scope_keys_of(record):
                    add(scope, period_of(record.created_at), 0, Decimal(0), tokens, record.cost)
        if settled:
            Reservation.objects.filter(id__in=settled).update(settled_at=timezone.now())
        for (scope, period), (t_res, s_res, t_used, s_used) in sorted(deltas.items()):
            BudgetCounter.objects.filter(scope_key=scope, period=period).update(
                tokens_reserved=F("tokens_reserved") + t_res,
                spend_reserved=F("spend_reserved") + s_res,
                tokens_used=F("tokens_used") + t_used,
                spend_used=F("spend_used") + s_used,
            )
        return len(fresh)


def record_usage(record: CallRecord) -> None:
    """Write the call's usage record and settle its reservation to the actual tokens and cost.

    Runs in the tenant's schema, whatever the call's status (a refused call: a record with zero
    tokens). A second call with the same ``call_id`` is a no-op.
    """
    record_usage_batch([record])


def sweep_lost_reservations(*, older_than_seconds: int = 600) -> int:
    """Turn reservations left unsettled for ``older_than_seconds`` (their process died between
    the provider call and the record) into ``lost`` usage and audit records, charged at the
    reserved amounts (tokens marked estimated), and release them. Returns how many.

    Runs in the current tenant schema; ``usage.tasks.sweep_all_tenants`` visits every tenant.
    """
    from audit.services import record_audit

    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    swept = 0
    lost = Reservation.objects.filter(settled_at__isnull=True, created_at__lte=cutoff)
    for reservation in lost.order_by("id"):
        record = CallRecord(
            call_id=reservation.call_id,
            request_id=reservation.request_id,
            created_at=reservation.created_at,
            api_key_id=reservation.api_key_id,
            api_key_prefix="",
            end_user=reservation.end_user,
            feature=reservation.feature,
            mode="sync",
            endpoint="chat",
            alias="",
            status="lost",
            input_tokens=int(reservation.tokens),
            tokens_estimated=True,
            cost=reservation.spend,
            error_type="lost",
            error_message="The process serving this call stopped before "
            "recording it; charged at its reservation.",
            http_status=0,
        )
        with transaction.atomic():
            # A late record of the same call may have won the race: then nothing to sweep.
            if record_usage_batch([record]):
                record_audit(record)
                swept += 1
    return swept


def prune_admission_state(*, now: datetime | None = None) -> tuple[int, int]:
    """Delete rate windows past their minute and settled reservations past their retry
    horizon, in the current tenant schema. Returns (windows, reservations) deleted."""
    now = now or timezone.now()
    windows, _ = RateWindow.objects.filter(
        window_start__lt=ratelimit.window_start(now) - RATE_WINDOWS_KEPT
    ).delete()
    reservations, _ = Reservation.objects.filter(
        settled_at__lt=now - SETTLED_RESERVATION_KEPT
    ).delete()
    return windows, reservations


# --- limits edited in the console ---------------------------------------------------------------


def set_limit(
    *, tenant, scope: str, scope_value: str, metric: str, hard: Decimal, soft_percent: int = 80
) -> Limit:
    """Create or change one limit (in the tenant's schema); this process applies it from the
    next request, the others within a few seconds."""
    if scope not in Limit.Scope.values:
        raise InvalidRequest(f"Unknown scope {scope!r}.", param="scope")
    if metric not in Limit.Metric.values:
        raise InvalidRequest(f"Unknown metric {metric!r}.", param="metric")
    if hard is None or hard < 0:
        raise InvalidRequest("A limit is a number of 0 or more.", param="hard")
    if not 1 <= soft_percent <= 100:
        raise InvalidRequest("The soft level is a percentage from 1 to 100.", param="soft_percent")
    scope_value = (scope_value or "").strip()
    if scope == Limit.Scope.TENANT:
        scope_value = ""
    elif not scope_value:
        raise InvalidRequest(
            "Name the key id, feature or end user (or * for each end user).", param="scope_value"
        )
    elif scope == Limit.Scope.API_KEY and not scope_value.isdigit():
        raise InvalidRequest("An API key limit names the key's numeric id.", param="scope_value")
    elif scope_value == "*" and scope != Limit.Scope.END_USER:
        raise InvalidRequest("* (each one) applies to end users only.", param="scope_value")
    with schema_context(tenant.schema_name):
        limit, _ = Limit.objects.update_or_create(
            scope=scope,
            scope_value=scope_value,
            metric=metric,
            defaults={"hard": hard, "soft_percent": soft_percent},
        )
    forget_limits(tenant)
    return limit


def remove_limit(*, tenant, limit: Limit) -> None:
    """Delete one limit; this process stops applying it from the next request."""
    with schema_context(tenant.schema_name):
        limit.delete()
    forget_limits(tenant)
