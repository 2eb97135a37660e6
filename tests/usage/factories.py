"""Helpers for the usage tests: admit and settle calls, tighten a tenant's plan, make records."""

from __future__ import annotations

import time
from decimal import Decimal

from django.utils import timezone
from django_tenants.utils import schema_context

from gateway.records import CallRecord
from usage import services
from usage.limits import forget_limits
from usage.ratelimit import seconds_until_reset

REDIS_URL = "redis://127.0.0.1:6379/0"  # a real Redis runs here; tests skip without it


def set_plan(tenant, **limits) -> None:
    """Change the tenant's (own) plan; applies from the next admission of this process."""
    for name, value in limits.items():
        setattr(tenant.plan, name, value)
    tenant.plan.save()
    forget_limits(tenant)


def admit(
    tenant,
    call_id: str,
    *,
    tokens: int = 100,
    cost: Decimal = Decimal("0.001"),
    key: int | None = None,
    user: str = "",
    feature: str = "direct",
) -> services.Admission:
    with schema_context(tenant.schema_name):
        return services.admit(
            tenant=tenant,
            api_key_id=key,
            end_user=user,
            feature=feature,
            call_id=call_id,
            request_id=f"req-{call_id}",
            estimated_tokens=tokens,
            max_cost=cost,
        )


def call_record(call_id: str, **fields) -> CallRecord:
    """A finished call's record; any CallRecord field may be given."""
    values = {
        "call_id": call_id,
        "request_id": f"req-{call_id}",
        "created_at": timezone.now(),
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


def settle(tenant, call_id: str, tokens: int, cost: Decimal, **fields) -> None:
    with schema_context(tenant.schema_name):
        services.record_usage(call_record(call_id, input_tokens=tokens, cost=cost, **fields))


def within_one_window(needed_seconds: float = 5.0) -> None:
    """Wait for the next minute when fewer than ``needed_seconds`` remain in this one, so that
    a test's calls all fall in one rate-limit window."""
    if seconds_until_reset(timezone.now()) <= needed_seconds:
        time.sleep(seconds_until_reset(timezone.now()) + 0.05)
