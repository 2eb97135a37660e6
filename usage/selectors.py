"""Reads of usage: totals and groupings over a date range, current use against limits."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.db.models import F, QuerySet, Sum
from django.db.models.functions import TruncDay
from django.utils import timezone

from usage.models import BudgetCounter, UsageDailyEndUser, UsageHourly, UsageLatencyHourly
from usage.rollups import STAGES, day_bounds, percentile_from_buckets

GROUPS = {
    "feature": "feature",
    "model": "alias",
    "end_user": "end_user",
    "day": "day",
    "none": None,
}

# Sums as the dashboard and the API name them, over rollup rows (usage.rollups).
MEASURES = {
    "requests": Sum("calls"),
    "input_tokens": Sum("input_tokens"),
    "output_tokens": Sum("output_tokens"),
    "cost": Sum("cost"),
    "errors": Sum("errors"),
    "refused": Sum("refused"),
    "cache_hits": Sum("cache_hits"),
    "degraded": Sum("degraded"),
    "fallbacks": Sum("fallbacks"),
}
_UTC = timezone.get_fixed_timezone(0)


def hourly_rollups(*, start: date, end: date) -> QuerySet[UsageHourly]:
    """Hourly rollup rows of [start, end] (whole UTC days)."""
    since, until = _day_start(start), _day_start(end + timedelta(days=1))
    return UsageHourly.objects.filter(hour__gte=since, hour__lt=until)


def end_user_rollups(*, start: date, end: date) -> QuerySet[UsageDailyEndUser]:
    """Daily per-end-user rollup rows of [start, end]."""
    return UsageDailyEndUser.objects.filter(day__gte=start, day__lte=end)


def usage_summary(*, start: date, end: date, group_by: str) -> dict:
    """Totals (and per-group rows) for records created in [start, end] (whole UTC days), read
    from the rollups (equal to the sums of the records, see usage.rollups)."""
    rows = hourly_rollups(start=start, end=end)
    totals = _clean(rows.aggregate(**MEASURES))
    groups = []
    field = GROUPS[group_by]
    if field == "day":
        grouped = rows.annotate(key=TruncDay("hour", tzinfo=_UTC)).values("key")
    elif field == "end_user":
        grouped = end_user_rollups(start=start, end=end).annotate(key=F("end_user")).values("key")
    elif field:
        grouped = rows.annotate(key=F(field)).values("key")
    else:
        grouped = None
    if grouped is not None:
        for row in grouped.annotate(**MEASURES).order_by("key"):
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
    return day_bounds(day)[0]


def _clean(row: dict) -> dict:
    out = {}
    for key, value in row.items():
        if key == "cost":
            out[key] = format(value or 0, "f")
        else:
            out[key] = int(value or 0)
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


def latency_percentiles(*, start: date, end: date) -> list[dict]:
    """p50/p95/p99 per stage from the hourly latency histograms: within a factor 2**(1/16) of
    the exact nearest-rank percentiles of the records (see usage.rollups)."""
    since, until = _day_start(start), _day_start(end + timedelta(days=1))
    histograms: dict[str, list[tuple[int, int]]] = {}
    for row in (
        UsageLatencyHourly.objects.filter(hour__gte=since, hour__lt=until)
        .values("stage", "bucket")
        .annotate(calls=Sum("calls"))
        .order_by("stage", "bucket")
    ):
        histograms.setdefault(row["stage"], []).append((row["bucket"], int(row["calls"])))
    return [
        {
            "stage": stage,
            **{
                name: round(percentile_from_buckets(histograms[stage], q), 2)
                for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
            },
        }
        for stage in STAGES
        if stage in histograms
    ]


def dashboard(*, start: date, end: date) -> dict:
    """Everything the usage dashboard shows for [start, end] (whole UTC days), read from the
    rollups: a few thousand rows for a month, however many calls it had."""
    rows = hourly_rollups(start=start, end=end)
    totals = _clean(rows.aggregate(**MEASURES))
    requests = totals["requests"]

    def rate(name: str) -> float:
        return round(100 * totals[name] / requests, 2) if requests else 0.0

    rates = {name: rate(name) for name in ("errors", "fallbacks", "degraded", "cache_hits")}
    by_day_feature = list(
        rows.annotate(day=TruncDay("hour", tzinfo=_UTC))
        .values("day", "feature")
        .annotate(
            cost=Sum("cost"),
            tokens=Sum(F("input_tokens") + F("output_tokens")),
            requests=Sum("calls"),
        )
        .order_by("day", "feature")
    )
    by_model = list(
        rows.values("alias")
        .annotate(
            cost=Sum("cost"),
            requests=Sum("calls"),
            tokens=Sum(F("input_tokens") + F("output_tokens")),
        )
        .order_by("-cost", "alias")
    )
    top_users = list(
        end_user_rollups(start=start, end=end)
        .exclude(end_user="")
        .values("end_user")
        .annotate(cost=Sum("cost"), requests=Sum("calls"))
        .order_by("-cost", "end_user")[:10]
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
        "percentiles": latency_percentiles(start=start, end=end),
        "chart": {"days": days, "cost": series, "tokens": tokens_series},
        "by_model": by_model,
        "top_users": top_users,
        "daily": by_day_feature,
    }
