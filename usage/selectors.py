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


STAGES = ("total", "ttft", "guard", "admission", "provider", "output")


def dashboard(*, start: date, end: date) -> dict:
    """Everything the usage dashboard shows for [start, end] (whole UTC days), computed in the
    database from the usage records themselves."""
    from django.db import connection

    since, until = _day_start(start), _day_start(end + timedelta(days=1))
    rows = UsageRecord.objects.filter(created_at__gte=since, created_at__lt=until)
    totals = _clean(
        rows.aggregate(
            requests=Count("id"),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
            cost=Sum("cost"),
            errors=Count("id", filter=Q(status__in=["failed", "interrupted", "lost"])),
            refused=Count("id", filter=Q(status="refused")),
            cache_hits=Count("id", filter=Q(cache_hit=True)),
            degraded=Count("id", filter=Q(degraded=True)),
            fallbacks=Count("id", filter=Q(fallback_used=True)),
        )
    )
    requests = totals["requests"] or 0

    def rate(name: str) -> float:
        return round(100 * totals[name] / requests, 2) if requests else 0.0

    rates = {name: rate(name) for name in ("errors", "fallbacks", "degraded", "cache_hits")}
    percentiles = []
    with connection.cursor() as cursor:
        for stage in STAGES:
            cursor.execute(
                "SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP "
                "(ORDER BY (latency_ms->>%s)::float) FROM usage_usagerecord "
                "WHERE created_at >= %s AND created_at < %s AND latency_ms ? %s",
                [stage, since, until, stage],
            )
            values = cursor.fetchone()[0]
            if values:
                percentiles.append(
                    {
                        "stage": stage,
                        "p50": round(values[0], 2),
                        "p95": round(values[1], 2),
                        "p99": round(values[2], 2),
                    }
                )
    by_day_feature = list(
        rows.annotate(day=TruncDay("created_at"))
        .values("day", "feature")
        .annotate(
            cost=Sum("cost"),
            tokens=Sum(F("input_tokens") + F("output_tokens")),
            requests=Count("id"),
        )
        .order_by("day", "feature")
    )
    by_model = list(
        rows.values("alias")
        .annotate(
            cost=Sum("cost"),
            requests=Count("id"),
            tokens=Sum(F("input_tokens") + F("output_tokens")),
        )
        .order_by("-cost")
    )
    top_users = list(
        rows.exclude(end_user="")
        .values("end_user")
        .annotate(cost=Sum("cost"), requests=Count("id"))
        .order_by("-cost")[:10]
    )
    days = sorted({r["day"].date().isoformat() for r in by_day_feature})
    features = sorted({r["feature"] for r in by_day_feature})
    series = {feature: [0.0] * len(days) for feature in features}
    tokens_series = {feature: [0] * len(days) for feature in features}
    for r in by_day_feature:
        index = days.index(r["day"].date().isoformat())
        series[r["feature"]][index] = float(r["cost"] or 0)
        tokens_series[r["feature"]][index] = int(r["tokens"] or 0)
    return {
        "totals": totals,
        "rates": rates,
        "percentiles": percentiles,
        "chart": {"days": days, "cost": series, "tokens": tokens_series},
        "by_model": by_model,
        "top_users": top_users,
        "daily": by_day_feature,
    }
