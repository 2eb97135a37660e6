"""Reads of usage: totals and groupings over a date range, current use against limits."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.db.models import Count, F, Q, Sum
from django.db.models.functions import TruncDay
from django.utils import timezone

from usage.models import BudgetCounter, UsageRecord

GROUPS = {
    "feature": "feature",
    "model": "alias",
    "end_user": "end_user",
    "day": "day",
    "none": None,
}


def usage_summary(*, start: date, end: date, group_by: str) -> dict:
    """Totals (and per-group rows) for records created in [start, end] (whole UTC days)."""
    since = _day_start(start)
    until = _day_start(end + timedelta(days=1))
    rows = UsageRecord.objects.filter(created_at__gte=since, created_at__lt=until)
    aggregates = {
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
    totals = _clean(rows.aggregate(**aggregates))
    groups = []
    field = GROUPS[group_by]
    if field == "day":
        grouped = rows.annotate(key=TruncDay("created_at")).values("key")
    elif field:
        grouped = rows.annotate(key=F(field)).values("key")
    else:
        grouped = None
    if grouped is not None:
        for row in grouped.annotate(**aggregates).order_by("key"):
            key = row.pop("key")
            groups.append(
                {"key": key.date().isoformat() if hasattr(key, "date") else key, **_clean(row)}
            )
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "group_by": group_by,
        "totals": totals,
        "groups": groups,
    }


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min).replace(tzinfo=timezone.get_fixed_timezone(0))


def _clean(row: dict) -> dict:
    out = {}
    for key, value in row.items():
        if key == "cost":
            out[key] = format(value or 0, "f")
        else:
            out[key] = value or 0
    return out


def current_budgets(period: str) -> list[dict]:
    return [
        {
            "scope": c.scope_key,
            "period": c.period,
            "tokens_used": c.tokens_used,
            "spend_used": format(c.spend_used, "f"),
            "tokens_reserved": c.tokens_reserved,
            "spend_reserved": format(c.spend_reserved, "f"),
        }
        for c in BudgetCounter.objects.filter(period=period).order_by("scope_key")
    ]
