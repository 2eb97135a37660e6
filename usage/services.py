"""Admission (rate limits and budgets) before a call, settlement and usage records after it.

Race-free budgets: admission reserves the call's maximum (estimated tokens, maximum cost) against
every monthly budget that applies, under row locks, in one transaction; settlement replaces the
reservation with the actual use. Concurrent calls therefore cannot together overspend a budget
by more than one call's reservation.

Rate limits count requests and estimated tokens in fixed one-minute windows, per tenant, per
API key, per feature and per end user: in PostgreSQL, or in Redis when ``REDIS_URL`` is set.
"""

from __future__ import annotations

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

from gateway.errors import QuotaExceeded, RateLimited
from gateway.records import CallRecord
from usage.models import (
    BudgetCounter,
    Limit,
    Reservation,
    SoftLimitNotice,
    UsageRecord,
)

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


def _check_rates_postgres(specs: list[LimitSpec], tokens: int, now: datetime) -> None:
    by_scope: dict[str, dict[str, Decimal]] = {}
    for spec in specs:
        if spec.metric in PER_MINUTE:
            by_scope.setdefault(spec.scope_key, {})[spec.metric] = spec.hard
    if not by_scope:
        return
    window = _window_start(now)
    with connection.cursor() as cursor:
        # One statement for every scope: unnest the parallel arrays of keys.
        cursor.execute(
            "INSERT INTO usage_ratewindow (scope_key, window_start, requests, tokens) "
            "SELECT k, %s, 1, %s FROM unnest(%s::text[]) AS k "
            "ON CONFLICT (scope_key, window_start) DO UPDATE SET "
            "requests = usage_ratewindow.requests + 1, "
            "tokens = usage_ratewindow.tokens + EXCLUDED.tokens "
            "RETURNING scope_key, requests, tokens",
            [window, tokens, list(by_scope)],
        )
        counts = {row[0]: (row[1], row[2]) for row in cursor.fetchall()}
    retry_after = max(1, 60 - now.second)
    for scope_key, limits in by_scope.items():
        requests, used_tokens = counts[scope_key]
        rpm = limits.get(Limit.Metric.REQUESTS_PER_MINUTE)
        tpm = limits.get(Limit.Metric.TOKENS_PER_MINUTE)
        if rpm is not None and requests > rpm:
            raise RateLimited(
                f"Rate limit reached: {int(rpm)} requests per minute for {scope_key}.",
                param=f"{scope_key}.requests_per_minute",
                retry_after=retry_after,
            )
        if tpm is not None and used_tokens > tpm:
            raise RateLimited(
                f"Rate limit reached: {int(tpm)} tokens per minute for {scope_key}.",
                param=f"{scope_key}.tokens_per_minute",
                retry_after=retry_after,
            )


def _check_rates(tenant, specs: list[LimitSpec], tokens: int, now: datetime) -> None:
    if settings.REDIS_URL:
        from usage.ratelimit import check_rates_redis

        check_rates_redis(tenant.schema_name, specs, tokens, now)
    else:
        _check_rates_postgres(specs, tokens, now)


# --- budgets ------------------------------------------------------------------------------------


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


def _reserve(
    specs: list[LimitSpec], tokens: int, spend: Decimal, now: datetime, period: str
) -> tuple[list[str], list[tuple[LimitSpec, int]]]:
    monthly = [s for s in specs if s.metric in MONTHLY]
    scope_keys = sorted({s.scope_key for s in monthly} | {"tenant"})
    _ensure_counters(scope_keys, period)
    counters = {
        c.scope_key: c
        for c in BudgetCounter.objects.select_for_update()
        .filter(scope_key__in=scope_keys, period=period)
        .order_by("scope_key")
    }
    _, reset = period_bounds(period)
    soft_crossed: list[tuple[LimitSpec, int]] = []
    for spec in monthly:
        counter = counters[spec.scope_key]
        if spec.metric == Limit.Metric.MONTHLY_TOKENS:
            current = Decimal(counter.tokens_used + counter.tokens_reserved)
            wanted = Decimal(tokens)
            shown = f"{int(counter.tokens_used)} tokens used of {int(spec.hard)}"
        else:
            current = counter.spend_used + counter.spend_reserved
            wanted = spend
            shown = f"${counter.spend_used:.4f} spent of ${spec.hard:.2f}"
        if current + wanted > spec.hard:
            raise QuotaExceeded(
                f"Monthly limit {spec.label} reached: {shown}; it resets at "
                f"{reset.isoformat().replace('+00:00', 'Z')}.",
                param=spec.label,
            )
        percent = int((current + wanted) * 100 / spec.hard) if spec.hard else 100
        if percent >= spec.soft_percent:
            soft_crossed.append((spec, percent))
    BudgetCounter.objects.filter(scope_key__in=scope_keys, period=period).update(
        tokens_reserved=F("tokens_reserved") + tokens,
        spend_reserved=F("spend_reserved") + spend,
    )
    return scope_keys, soft_crossed


def on_soft_limit_crossed(*, tenant, spec: LimitSpec, period: str, percent: int) -> None:
    """Recorded once per scope, metric and period; notifications hang off this one place."""
    logger.warning(
        "soft limit crossed", extra={"limit": spec.label, "percent": percent, "period": period}
    )


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

    Raises RateLimited or QuotaExceeded (and then nothing is counted or reserved).
    """
    now = timezone.now()
    period = period_of(now)
    specs = _limits(tenant).specs(api_key_id=api_key_id, feature=feature, end_user=end_user)
    with transaction.atomic():
        _check_rates(tenant, specs, estimated_tokens, now)
        scope_keys, soft_crossed = _reserve(specs, estimated_tokens, max_cost, now, period)
        reservation = Reservation.objects.create(
            call_id=call_id,
            request_id=request_id,
            period=period,
            scope_keys=scope_keys,
            tokens=estimated_tokens,
            spend=max_cost,
            api_key_id=api_key_id,
            end_user=end_user,
            feature=feature,
            expires_at=now + RESERVATION_TTL,
        )
    admission = Admission(reservation_id=reservation.id)
    for spec, percent in soft_crossed:
        admission.warnings.append(f"{spec.label} at {percent}%")
        _, created = SoftLimitNotice.objects.get_or_create(
            scope_key=spec.scope_key,
            metric=spec.metric,
            period=period,
            defaults={"percent": percent},
        )
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
    )


def _settle(call_id: str, tokens: int, spend: Decimal) -> None:
    reservation = (
        Reservation.objects.select_for_update()
        .filter(call_id=call_id, settled_at__isnull=True)
        .first()
    )
    if reservation is None:
        return
    BudgetCounter.objects.filter(
        scope_key__in=reservation.scope_keys, period=reservation.period
    ).update(
        tokens_reserved=F("tokens_reserved") - reservation.tokens,
        spend_reserved=F("spend_reserved") - reservation.spend,
        tokens_used=F("tokens_used") + tokens,
        spend_used=F("spend_used") + spend,
    )
    reservation.settled_at = timezone.now()
    reservation.save(update_fields=["settled_at"])


def record_usage(record: CallRecord) -> None:
    """Write the call's usage record (once per call id) and settle its reservation."""
    with transaction.atomic():
        try:
            with transaction.atomic():
                _usage_row(record).save(force_insert=True)
        except IntegrityError:
            return  # already recorded (a retried task or the sweeper got there first)
        _settle(record.call_id, record.input_tokens + record.output_tokens, record.cost)


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
