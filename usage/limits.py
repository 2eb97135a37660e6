"""Which limits apply to a call: the tenant's plan (with its overrides), the tenant's ``Limit``
rows and the per-key columns of ``ApiKey``, cached per process for a few seconds.

Admission reads this on every call, so it must not cost a database round trip: the whole
configuration of a tenant is loaded at once and kept for ``CONFIG_TTL_SECONDS``. Edits made
through ``usage.services`` drop the cached copy of this process at once (other processes pick
the change up when their copy expires).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from django_tenants.utils import schema_context

from usage.models import Limit

CONFIG_TTL_SECONDS = 5.0
DEFAULT_SOFT_PERCENT = 80
MONTHLY = (Limit.Metric.MONTHLY_TOKENS, Limit.Metric.MONTHLY_SPEND)
PER_MINUTE = (Limit.Metric.REQUESTS_PER_MINUTE, Limit.Metric.TOKENS_PER_MINUTE)

# Plan field (and ``Tenant.limit_overrides`` key) for each tenant-level metric.
PLAN_FIELDS = {
    Limit.Metric.MONTHLY_TOKENS: "monthly_token_limit",
    Limit.Metric.MONTHLY_SPEND: "monthly_spend_limit",
    Limit.Metric.REQUESTS_PER_MINUTE: "requests_per_minute",
    Limit.Metric.TOKENS_PER_MINUTE: "tokens_per_minute",
}


@dataclass(frozen=True)
class LimitSpec:
    """One limit as admission applies it."""

    scope_key: str  # "tenant", "api_key:12", "feature:summarize", "end_user:u-1"
    metric: str
    hard: Decimal
    soft_percent: int
    source: str = "plan"  # "plan", "limit" (a Limit row) or "key" (ApiKey columns)

    @property
    def label(self) -> str:
        """How errors, warnings and the API name this limit, e.g. ``tenant.monthly_tokens``."""
        return f"{self.scope_key}.{self.metric}"


def period_of(moment: datetime) -> str:
    """The budget period (calendar month, UTC) a moment falls in: ``YYYY-MM``."""
    return moment.astimezone(UTC).strftime("%Y-%m")


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """Start (inclusive) and end (exclusive) of a ``YYYY-MM`` period, in UTC."""
    year, month = (int(p) for p in period.split("-"))
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def scope_key(scope: str, scope_value: str = "") -> str:
    """The counter key of a limit scope: ``tenant`` or ``<scope>:<value>``."""
    return "tenant" if scope == Limit.Scope.TENANT else f"{scope}:{scope_value}"


class TenantLimits:
    """Every limit configured for one tenant (read from its schema and the public plan)."""

    def __init__(self, tenant) -> None:
        from tenants.models import ApiKey, Tenant

        # Read afresh: the request's tenant object may be a cached copy older than an edit.
        current = Tenant.objects.select_related("plan").filter(pk=tenant.pk).first() or tenant
        plan = current.plan
        overrides = current.limit_overrides or {}

        def plan_value(name: str) -> Decimal | None:
            value = overrides.get(name, getattr(plan, name, None) if plan else None)
            return None if value in (None, "") else Decimal(str(value))

        default_soft = plan.soft_limit_percent if plan else DEFAULT_SOFT_PERCENT
        soft = int(overrides.get("soft_limit_percent", default_soft))
        self.tenant: dict[str, LimitSpec] = {}
        for metric, name in PLAN_FIELDS.items():
            value = plan_value(name)
            if value is not None:
                self.tenant[metric] = LimitSpec("tenant", metric, value, soft)
        # (scope, scope_value) -> specs from Limit rows (tenant-scope rows override the plan)
        self.rows: dict[tuple[str, str], list[LimitSpec]] = {}
        self.row_ids: dict[tuple[str, str, str], int] = {}
        with schema_context(tenant.schema_name):
            for row in Limit.objects.all():
                spec = LimitSpec(
                    scope_key(row.scope, row.scope_value),
                    row.metric,
                    row.hard,
                    row.soft_percent,
                    "limit",
                )
                self.row_ids[(row.scope, row.scope_value, row.metric)] = row.id
                if row.scope == Limit.Scope.TENANT:
                    self.tenant[row.metric] = spec
                else:
                    self.rows.setdefault((row.scope, row.scope_value), []).append(spec)
        self.keys: dict[int, tuple[int | None, int | None]] = {
            key_id: (rpm, tpm)
            for key_id, rpm, tpm in ApiKey.objects.filter(tenant_id=tenant.id).values_list(
                "id", "requests_per_minute", "tokens_per_minute"
            )
            if rpm or tpm
        }

    def key_specs(self, api_key_id: int) -> list[LimitSpec]:
        """Rate limits from the key's own columns (overridden by an api_key Limit row)."""
        rpm, tpm = self.keys.get(api_key_id, (None, None))
        key = f"api_key:{api_key_id}"
        specs = {}
        if rpm:
            specs[Limit.Metric.REQUESTS_PER_MINUTE] = LimitSpec(
                key, Limit.Metric.REQUESTS_PER_MINUTE, Decimal(rpm), DEFAULT_SOFT_PERCENT, "key"
            )
        if tpm:
            specs[Limit.Metric.TOKENS_PER_MINUTE] = LimitSpec(
                key, Limit.Metric.TOKENS_PER_MINUTE, Decimal(tpm), DEFAULT_SOFT_PERCENT, "key"
            )
        for spec in self.rows.get((Limit.Scope.API_KEY, str(api_key_id)), []):
            specs[spec.metric] = spec
        return list(specs.values())

    def specs(self, *, api_key_id: int | None, feature: str, end_user: str) -> list[LimitSpec]:
        """The limits one call is subject to."""
        specs = list(self.tenant.values())
        if api_key_id is not None:
            specs += self.key_specs(api_key_id)
        specs += self.rows.get((Limit.Scope.FEATURE, feature), [])
        if end_user:
            # A limit on this end user replaces the "each end user" one for the same metric.
            own = {s.metric: s for s in self.rows.get((Limit.Scope.END_USER, end_user), [])}
            for spec in self.rows.get((Limit.Scope.END_USER, "*"), []):
                if spec.metric not in own:
                    own[spec.metric] = LimitSpec(
                        f"end_user:{end_user}",
                        spec.metric,
                        spec.hard,
                        spec.soft_percent,
                        "limit",
                    )
            specs += own.values()
        return specs

    def all_specs(self) -> list[LimitSpec]:
        """Every configured limit (``end_user:*`` stands for "each end user")."""
        specs = list(self.tenant.values())
        for rows in self.rows.values():
            specs += rows
        for key_id in self.keys:
            specs += [s for s in self.key_specs(key_id) if s.source == "key"]
        return specs


_cache: dict[str, tuple[float, TenantLimits]] = {}
_cache_lock = threading.Lock()


def limits_of(tenant) -> TenantLimits:
    """The tenant's limit configuration, from this process's cache when fresh enough."""
    hit = _cache.get(tenant.schema_name)
    if hit and time.monotonic() - hit[0] < CONFIG_TTL_SECONDS:
        return hit[1]
    limits = TenantLimits(tenant)
    with _cache_lock:
        _cache[tenant.schema_name] = (time.monotonic(), limits)
    return limits


def forget_limits(tenant) -> None:
    """Limits changed: the next request of this process reads them afresh."""
    with _cache_lock:
        _cache.pop(tenant.schema_name, None)
