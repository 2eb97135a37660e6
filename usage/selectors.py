"""Reads of usage: totals and groupings over a date range, current use against limits."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal

import redis
from django.conf import settings
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import TruncDay
from django.utils import timezone
from django_tenants.utils import schema_context

from usage.limits import MONTHLY, PER_MINUTE, TenantLimits, period_bounds, period_of
from usage.models import BudgetCounter, Limit, RateWindow, UsageRecord
from usage.ratelimit import WINDOW, Counts, redis_counts, window_start

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
        "from": start,
        "to": end,
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


def _rate_counts(tenant, scope_keys: list[str], now: datetime) -> Counts:
    if settings.REDIS_URL:
        try:
            return redis_counts(tenant.schema_name, scope_keys, now)
        except redis.RedisError:
            pass  # admission counts in PostgreSQL while Redis is unreachable
    return {
        w.scope_key: (w.requests, w.tokens)
        for w in RateWindow.objects.filter(window_start=window_start(now), scope_key__in=scope_keys)
    }


def limit_usage(tenant) -> list[dict]:
    """Every limit that applies to the tenant (in its schema), with its current use: monthly
    budgets count used plus in-flight reservations; rate limits the current minute. A limit on
    "each end user" (``end_user:*``) shows its heaviest end user."""
    now = timezone.now()
    period = period_of(now)
    _, month_end = period_bounds(period)
    config = TenantLimits(tenant)
    specs = config.all_specs()
    with schema_context(tenant.schema_name):
        counters = {c.scope_key: c for c in BudgetCounter.objects.filter(period=period)}
        rate_keys = sorted({s.scope_key for s in specs if s.metric in PER_MINUTE} - {"end_user:*"})
        windows = _rate_counts(tenant, rate_keys, now)
        if any(s.scope_key == "end_user:*" and s.metric in PER_MINUTE for s in specs):
            windows.update(
                (w.scope_key, (w.requests, w.tokens))
                for w in RateWindow.objects.filter(
                    window_start=window_start(now), scope_key__startswith="end_user:"
                )
            )

    def monthly_use(counter: BudgetCounter | None, metric: str) -> Decimal:
        if counter is None:
            return Decimal(0)
        if metric == Limit.Metric.MONTHLY_TOKENS:
            return Decimal(counter.tokens_used + counter.tokens_reserved)
        return counter.spend_used + counter.spend_reserved

    overview = []
    for spec in specs:
        scope, _, value = spec.scope_key.partition(":")
        each_user = spec.scope_key == "end_user:*"
        if spec.metric in MONTHLY:
            matching = (
                [c for k, c in counters.items() if k.startswith("end_user:")]
                if each_user
                else [counters.get(spec.scope_key)]
            )
            used = max((monthly_use(c, spec.metric) for c in matching), default=Decimal(0))
            resets = month_end
        else:
            index = 0 if spec.metric == Limit.Metric.REQUESTS_PER_MINUTE else 1
            matching = (
                [v for k, v in windows.items() if k.startswith("end_user:")]
                if each_user
                else [windows.get(spec.scope_key, (0, 0))]
            )
            used = Decimal(max((v[index] for v in matching), default=0))
            resets = window_start(now) + WINDOW
        percent = float(used * 100 / spec.hard) if spec.hard else 100.0
        overview.append(
            {
                "scope_key": spec.scope_key,
                "scope": scope,
                "scope_value": value,
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
                "limit_id": config.row_ids.get((scope, value, spec.metric))
                if spec.source == "limit"
                else None,
                "source": spec.source,
            }
        )
    return overview


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
