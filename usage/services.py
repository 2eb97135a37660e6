"""Admission (rate limits and budgets) before a call, settlement and usage records after it.

Race-free budgets: admission reserves the call's maximum (estimated tokens, maximum cost) against
every monthly budget that applies, under row locks, in one transaction; settlement replaces the
reservation with the actual use. Concurrent calls therefore cannot together overspend a budget
by more than one call's reservation.

Rate limits count requests and estimated tokens in fixed one-minute windows, per tenant, per
API key, per feature and per end user: in PostgreSQL, or in Redis when ``REDIS_URL`` is set.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q, Sum
from django.utils import timezone
from django_tenants.utils import schema_context
from psycopg import sql

from gateway.errors import QuotaExceeded, RateLimited
from gateway.records import CallRecord
from usage.models import (
    BudgetCounter,
    Limit,
    RateWindow,
    Reservation,
    SoftLimitNotice,
    UsageRecord,
)
from usage.rollups import add_records as add_to_rollups

logger = logging.getLogger(__name__)

RESERVATION_TTL = timedelta(minutes=10)
_CONFIG_TTL_SECONDS = 5.0
MONTHLY = (Limit.Metric.MONTHLY_TOKENS, Limit.Metric.MONTHLY_SPEND)
PER_MINUTE = (Limit.Metric.REQUESTS_PER_MINUTE, Limit.Metric.TOKENS_PER_MINUTE)


@dataclass(frozen=True)
class LimitSpec:
    scope_key: str  # "tenant", "api_key:12", "feature:summarize", "end_user:u-1"
    metric: str
    hard: Decimal
    soft_percent: int

    @property
    def label(self) -> str:
        return f"{self.scope_key}.{self.metric}"


@dataclass
class Admission:
    reservation_id: int | None
    warnings: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)


def period_of(moment: datetime) -> str:
    return moment.strftime("%Y-%m")


def period_bounds(period: str) -> tuple[datetime, datetime]:
    year, month = (int(p) for p in period.split("-"))
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return start, end


# --- limit configuration (cached briefly per tenant and process) --------------------------------


class _TenantLimits:
    def __init__(self, tenant) -> None:
        plan = tenant.plan
        overrides = tenant.limit_overrides or {}

        def plan_value(name: str):
            value = overrides.get(name, getattr(plan, name, None) if plan else None)
            return None if value in (None, "") else Decimal(str(value))

        soft = int(overrides.get("soft_limit_percent", plan.soft_limit_percent if plan else 80))
        self.tenant: dict[str, LimitSpec] = {}
        for metric, name in (
            (Limit.Metric.MONTHLY_TOKENS, "monthly_token_limit"),
            (Limit.Metric.MONTHLY_SPEND, "monthly_spend_limit"),
            (Limit.Metric.REQUESTS_PER_MINUTE, "requests_per_minute"),
            (Limit.Metric.TOKENS_PER_MINUTE, "tokens_per_minute"),
        ):
            value = plan_value(name)
            if value is not None:
                self.tenant[metric] = LimitSpec("tenant", metric, value, soft)
        self.rows: dict[tuple[str, str], list[Limit]] = {}
        for row in Limit.objects.all():
            if row.scope == Limit.Scope.TENANT:
                self.tenant[row.metric] = LimitSpec(
                    "tenant", row.metric, row.hard, row.soft_percent
                )
            else:
                self.rows.setdefault((row.scope, row.scope_value), []).append(row)
        from tenants.models import ApiKey

        self.keys = {
            key_id: (rpm, tpm)
            for key_id, rpm, tpm in ApiKey.objects.filter(tenant_id=tenant.id).values_list(
                "id", "requests_per_minute", "tokens_per_minute"
            )
            if rpm or tpm
        }

    def specs(self, *, api_key_id: int | None, feature: str, end_user: str) -> list[LimitSpec]:
        specs = list(self.tenant.values())
        if api_key_id is not None:
            rpm, tpm = self.keys.get(api_key_id, (None, None))
            key = f"api_key:{api_key_id}"
            if rpm:
                specs.append(LimitSpec(key, Limit.Metric.REQUESTS_PER_MINUTE, Decimal(rpm), 80))
            if tpm:
                specs.append(LimitSpec(key, Limit.Metric.TOKENS_PER_MINUTE, Decimal(tpm), 80))
            for row in self.rows.get((Limit.Scope.API_KEY, str(api_key_id)), []):
                specs.append(LimitSpec(key, row.metric, row.hard, row.soft_percent))
        for row in self.rows.get((Limit.Scope.FEATURE, feature), []):
            specs.append(LimitSpec(f"feature:{feature}", row.metric, row.hard, row.soft_percent))
        if end_user:
            rows = self.rows.get((Limit.Scope.END_USER, end_user)) or self.rows.get(
                (Limit.Scope.END_USER, "*"), []
            )
            for row in rows:
                specs.append(
                    LimitSpec(f"end_user:{end_user}", row.metric, row.hard, row.soft_percent)
                )
        return specs


_config: dict[str, tuple[float, _TenantLimits]] = {}
_config_lock = threading.Lock()


def _limits(tenant) -> _TenantLimits:
    hit = _config.get(tenant.schema_name)
    if hit and time.monotonic() - hit[0] < _CONFIG_TTL_SECONDS:
        return hit[1]
    with schema_context(tenant.schema_name):
        limits = _TenantLimits(tenant)
    with _config_lock:
        _config[tenant.schema_name] = (time.monotonic(), limits)
    return limits


def forget_limits(tenant) -> None:
    """Limits changed: the next request of this process reads them afresh."""
    with _config_lock:
        _config.pop(tenant.schema_name, None)


# --- rate limits --------------------------------------------------------------------------------


def _window_start(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0)


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
    for scope_key in scope_keys:
        if scope_key in existing:
            continue
        # A budget that starts being tracked mid-month starts from what was already used.
        totals = UsageRecord.objects.filter(
            _scope_filter(scope_key), created_at__gte=start, created_at__lt=end
        ).aggregate(i=Sum("input_tokens"), o=Sum("output_tokens"), c=Sum("cost"))
        try:
            with transaction.atomic():
                BudgetCounter.objects.create(
                    scope_key=scope_key,
                    period=period,
                    tokens_used=(totals["i"] or 0) + (totals["o"] or 0),
                    spend_used=totals["c"] or Decimal(0),
                )
        except IntegrityError:
            pass  # created concurrently: fine


# One statement, one round trip, atomic on its own: count the request in every rate window,
# reserve the call's maximum on every budget counter (row locks serialise concurrent callers,
# and each sees the others' committed reservations), and write the reservation. The caller
# checks the returned figures and, on a refusal, undoes exactly this (see _undo_admission).
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
DELETE FROM {schema}.usage_reservation WHERE call_id = %(call_id)s
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


def on_soft_limit_crossed(*, tenant, spec: LimitSpec, period: str, percent: int) -> None:
    """Recorded once per scope, metric and period; notifications hang off this one place."""
    logger.warning(
        "soft limit crossed", extra={"limit": spec.label, "percent": percent, "period": period}
    )
    from jobs.webhooks import emit

    with schema_context(tenant.schema_name):
        emit(
            "quota.soft_limit",
            {"limit": spec.label, "percent": percent, "period": period, "hard": str(spec.hard)},
        )


def on_quota_exceeded(*, tenant, refusal: QuotaExceeded, period: str) -> None:
    """A hard limit refused a call: recorded and notified once per limit and period."""
    from jobs.webhooks import emit

    noticed = (tenant.schema_name, refusal.param, "exceeded", period)
    if noticed in _noticed:
        return
    with schema_context(tenant.schema_name):
        _, created = SoftLimitNotice.objects.get_or_create(
            scope_key=refusal.param or "",
            metric="exceeded",
            period=period,
            defaults={"percent": 100},
        )
        _noticed.add(noticed)
        if created:
            emit(
                "quota.exceeded",
                {"limit": refusal.param, "message": refusal.message, "period": period},
            )


def _refusal(
    specs: list[LimitSpec],
    rows: list[tuple],
    tokens: int,
    spend: Decimal,
    now: datetime,
    period: str,
) -> tuple[Exception | None, list[tuple[LimitSpec, int]]]:
    rates = {r[1]: (r[2], r[3]) for r in rows if r[0] == "rate"}
    budgets = {r[1]: r[2:] for r in rows if r[0] == "budget"}
    _, reset = period_bounds(period)
    retry_after = max(1, 60 - now.second)
    soft: list[tuple[LimitSpec, int]] = []
    for spec in specs:
        if spec.metric == Limit.Metric.REQUESTS_PER_MINUTE:
            if rates[spec.scope_key][0] > spec.hard:
                return RateLimited(
                    f"Rate limit reached: {int(spec.hard)} requests per minute for "
                    f"{spec.scope_key}.",
                    param=spec.label,
                    retry_after=retry_after,
                ), soft
        elif spec.metric == Limit.Metric.TOKENS_PER_MINUTE:
            if rates[spec.scope_key][1] > spec.hard:
                return RateLimited(
                    f"Rate limit reached: {int(spec.hard)} tokens per minute for {spec.scope_key}.",
                    param=spec.label,
                    retry_after=retry_after,
                ), soft
        else:
            tokens_used, tokens_reserved, spend_used, spend_reserved = budgets[spec.scope_key]
            if spec.metric == Limit.Metric.MONTHLY_TOKENS:
                committed = tokens_used + tokens_reserved  # includes this call's reservation
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


def _check_rates_only(rate_specs, rows, now, tenant, params) -> None:
    refusal, _ = _refusal(rate_specs, rows, 0, Decimal(0), now, params["period"])
    if refusal is not None:
        _run(_UNDO_RATES_SQL, tenant.schema_name, params)
        raise refusal


_UNDO_RATES_SQL = """
UPDATE {schema}.usage_ratewindow SET requests = requests - 1, tokens = tokens - %(tokens)s
WHERE window_start = %(window)s AND scope_key = ANY(%(rate_keys)s::text[])
"""

_known_counters: set[tuple[str, str, str]] = set()
_noticed: set[tuple[str, str, str, str]] = set()


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
    """Check rate limits and reserve the call's maximum against every monthly budget.

    Raises RateLimited or QuotaExceeded; then nothing stays counted or reserved.
    """
    now = timezone.now()
    period = period_of(now)
    specs = _limits(tenant).specs(api_key_id=api_key_id, feature=feature, end_user=end_user)
    if settings.REDIS_URL:
        from usage.ratelimit import check_rates_redis

        check_rates_redis(tenant.schema_name, specs, estimated_tokens, now)
        rate_specs: list[LimitSpec] = []
    else:
        rate_specs = [s for s in specs if s.metric in PER_MINUTE]
    budget_specs = [s for s in specs if s.metric in MONTHLY]
    budget_keys = sorted({s.scope_key for s in budget_specs} | {"tenant"})
    missing = [k for k in budget_keys if (tenant.schema_name, k, period) not in _known_counters]
    if missing:
        with schema_context(tenant.schema_name):
            _ensure_counters(missing, period)
        _known_counters.update((tenant.schema_name, k, period) for k in missing)
    params = {
        "window": _window_start(now),
        "tokens": estimated_tokens,
        "spend": max_cost,
        "rate_keys": sorted({s.scope_key for s in rate_specs}),
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
    }
    rows = _run(_ADMIT_SQL, tenant.schema_name, params)
    existing = next((int(r[2]) for r in rows if r[0] == "existing"), None)
    if existing is not None:
        # The same call admitted before (a retry): its reservation still holds the budget.
        _check_rates_only(rate_specs, rows, now, tenant, params)
        return Admission(reservation_id=existing)
    if len([r for r in rows if r[0] == "budget"]) < len(budget_keys):
        # A counter this process believed in is gone (e.g. the schema was recreated).
        _run(_UNDO_SQL, tenant.schema_name, params)
        with schema_context(tenant.schema_name):
            _ensure_counters(budget_keys, period)
        rows = _run(_ADMIT_SQL, tenant.schema_name, params)
    refusal, soft_crossed = _refusal(
        rate_specs + budget_specs, rows, estimated_tokens, max_cost, now, period
    )
    if refusal is not None:
        _run(_UNDO_SQL, tenant.schema_name, params)
        if isinstance(refusal, QuotaExceeded):
            on_quota_exceeded(tenant=tenant, refusal=refusal, period=period)
        raise refusal
    reservation_id = next(int(r[2]) for r in rows if r[0] == "reservation")
    admission = Admission(reservation_id=reservation_id)
    for spec, percent in soft_crossed:
        admission.warnings.append(f"{spec.label} at {percent}%")
        noticed = (tenant.schema_name, spec.scope_key, spec.metric, period)
        if noticed in _noticed:
            continue
        with schema_context(tenant.schema_name):
            _, created = SoftLimitNotice.objects.get_or_create(
                scope_key=spec.scope_key,
                metric=spec.metric,
                period=period,
                defaults={"percent": percent},
            )
        _noticed.add(noticed)
        if created:
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
        retrieved_chunks=[
            {"document_id": c.document_id, "chunk_id": c.chunk_id, "score": round(c.score, 6)}
            for c in record.retrieved_chunks
        ],
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

    Settlement is summed per budget counter and applied last, so the tenant's hot counter row is
    locked once per batch, for the shortest time. Returns how many records were new.
    """
    if not records:
        return 0
    with transaction.atomic():
        ids = [r.call_id for r in records]
        existing = set(
            UsageRecord.objects.filter(call_id__in=ids).values_list("call_id", flat=True)
        )
        fresh = {r.call_id: r for r in records if r.call_id not in existing}
        if not fresh:
            return 0
        UsageRecord.objects.bulk_create([_usage_row(r) for r in fresh.values()])
        reservations = list(
            Reservation.objects.select_for_update().filter(
                call_id__in=list(fresh), settled_at__isnull=True
            )
        )
        # (scope, period) -> [tokens_reserved, spend_reserved, tokens_used, spend_used] deltas
        deltas: dict[tuple[str, str], list] = {}

        def add(scope: str, period: str, *values) -> None:
            row = deltas.setdefault((scope, period), [0, Decimal(0), 0, Decimal(0)])
            for i, value in enumerate(values):
                row[i] += value

        reserved = {r.call_id: r for r in reservations}
        for call_id, record in fresh.items():
            tokens = record.input_tokens + record.output_tokens
            reservation = reserved.get(call_id)
            if reservation is not None:
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
                # No reservation (refused before admission, or a database crash lost the
                # reservation's asynchronous commit): count the use on existing counters.
                for scope in _scope_keys_of(record):
                    add(scope, period_of(record.created_at), 0, Decimal(0), tokens, record.cost)
        if reservations:
            Reservation.objects.filter(id__in=[r.id for r in reservations]).update(
                settled_at=timezone.now()
            )
        for (scope, period), (t_res, s_res, t_used, s_used) in sorted(deltas.items()):
            BudgetCounter.objects.filter(scope_key=scope, period=period).update(
                tokens_reserved=F("tokens_reserved") + t_res,
                spend_reserved=F("spend_reserved") + s_res,
                tokens_used=F("tokens_used") + t_used,
                spend_used=F("spend_used") + s_used,
            )
        # Same transaction as the records: the rollups never count a record that is not there.
        add_to_rollups(list(fresh))
        return len(fresh)


def _scope_keys_of(record: CallRecord) -> list[str]:
    keys = ["tenant", f"feature:{record.feature}"]
    if record.api_key_id is not None:
        keys.append(f"api_key:{record.api_key_id}")
    if record.end_user:
        keys.append(f"end_user:{record.end_user}")
    return keys


def record_usage(record: CallRecord) -> None:
    """Write the call's usage record (once per call id) and settle its reservation."""
    record_usage_batch([record])


def sweep_lost_reservations(*, older_than: timedelta | None = None) -> int:
    """Turn reservations whose process died into ``lost`` usage (charged at the reservation)
    and audit records. Runs in the current tenant schema; the Celery task visits every tenant."""
    from audit.services import record_audit

    now = timezone.now()
    cutoff = now - older_than if older_than is not None else now
    swept = 0
    for reservation in Reservation.objects.filter(settled_at__isnull=True, expires_at__lte=cutoff):
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
            record_usage(record)
            record_audit(record)
        swept += 1
    return swept


# --- limits edited in the console ---------------------------------------------------------------


def set_limit(
    *, tenant, scope: str, scope_value: str, metric: str, hard: Decimal, soft_percent: int = 80
) -> Limit:
    """Create or change one limit; this process applies it from the next request, the others
    within a few seconds."""
    from gateway.errors import InvalidRequest

    if scope not in Limit.Scope.values:
        raise InvalidRequest(f"Unknown scope {scope!r}.", param="scope")
    if metric not in Limit.Metric.values:
        raise InvalidRequest(f"Unknown metric {metric!r}.", param="metric")
    if hard is None or hard < 0:
        raise InvalidRequest("A limit is a number of 0 or more.", param="hard")
    if not 1 <= soft_percent <= 100:
        raise InvalidRequest("The soft level is a percentage from 1 to 100.", param="soft_percent")
    if scope == Limit.Scope.TENANT:
        scope_value = ""
    elif not scope_value:
        raise InvalidRequest(
            "Name the key id, feature or end user (or * for each end user).", param="scope_value"
        )
    limit, _ = Limit.objects.update_or_create(
        scope=scope,
        scope_value=scope_value,
        metric=metric,
        defaults={"hard": hard, "soft_percent": soft_percent},
    )
    forget_limits(tenant)
    return limit


def remove_limit(*, tenant, limit: Limit) -> None:
    limit.delete()
    forget_limits(tenant)


def quota_overview(tenant) -> list[dict]:
    """Every limit that applies to the tenant, with current use against soft and hard levels."""
    now = timezone.now()
    period = period_of(now)
    _, reset = period_bounds(period)
    window = _window_start(now)
    with schema_context(tenant.schema_name):
        config = _TenantLimits(tenant)
        counters = {c.scope_key: c for c in BudgetCounter.objects.filter(period=period)}
        windows = {w.scope_key: w for w in RateWindow.objects.filter(window_start=window)}
        rows_by_key = {(r.scope, r.scope_value, r.metric): r for r in Limit.objects.all()}
    specs = list(config.tenant.values())
    for (scope, value), rows in config.rows.items():
        key = "end_user:" + value if scope == "end_user" else f"{scope}:{value}"
        specs += [LimitSpec(key, row.metric, row.hard, row.soft_percent) for row in rows]
    for key_id, (rpm, tpm) in config.keys.items():
        if rpm:
            specs.append(
                LimitSpec(f"api_key:{key_id}", Limit.Metric.REQUESTS_PER_MINUTE, Decimal(rpm), 80)
            )
        if tpm:
            specs.append(
                LimitSpec(f"api_key:{key_id}", Limit.Metric.TOKENS_PER_MINUTE, Decimal(tpm), 80)
            )
    overview = []
    for spec in specs:
        if spec.metric in MONTHLY:
            counter = counters.get(spec.scope_key)
            if spec.metric == Limit.Metric.MONTHLY_TOKENS:
                used = Decimal(counter.tokens_used + counter.tokens_reserved) if counter else 0
            else:
                used = (counter.spend_used + counter.spend_reserved) if counter else Decimal(0)
            resets = reset
        else:
            w = windows.get(spec.scope_key)
            used = Decimal(
                (w.requests if spec.metric == Limit.Metric.REQUESTS_PER_MINUTE else w.tokens)
                if w
                else 0
            )
            resets = window + timedelta(minutes=1)
        percent = float(used * 100 / spec.hard) if spec.hard else 100.0
        scope, _, value = spec.scope_key.partition(":")
        row = rows_by_key.get((scope, value, spec.metric))
        overview.append(
            {
                "scope_key": spec.scope_key,
                "metric": spec.metric,
                "hard": spec.hard,
                "soft_percent": spec.soft_percent,
                "used": used,
                "percent": round(percent, 1),
                "state": "hard"
                if percent >= 100
                else "soft"
                if percent >= spec.soft_percent
                else "ok",
                "resets": resets,
                "limit_id": row.id if row else None,
                "source": "limit" if row else ("key" if scope == "api_key" else "plan"),
            }
        )
    return overview
