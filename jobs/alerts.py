"""Alerts: soft limit reached, error or fallback rate above a threshold per feature, thumbs-down
rate rising, a deployment's circuit open. Each is raised at most once per kind, subject and
window (an hour), and told three ways: a console notice, an ``alert.triggered`` webhook, and an
e-mail to the tenant's admins through Django's e-mail backend."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.utils import timezone

from jobs.models import Alert
from jobs.webhooks import emit

logger = logging.getLogger(__name__)

WINDOW = timedelta(hours=1)
RATE_LOOKBACK = timedelta(minutes=15)


def _window_start(now):
    return now.replace(minute=0, second=0, microsecond=0)


def raise_alert(*, tenant, kind: str, subject: str, message: str, now=None) -> Alert | None:
    """Record and notify, unless the same alert was already raised in this window."""
    now = now or timezone.now()
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                kind=kind, subject=subject[:300], message=message, window_start=_window_start(now)
            )
    except IntegrityError:
        return None
    emit("alert.triggered", {"kind": kind, "subject": subject, "message": message})
    recipients = list(
        tenant.memberships.filter(role="admin")
        .exclude(user__email="")
        .values_list("user__email", flat=True)
    )
    if recipients:
        send_mail(
            f"[Switchboard] {tenant.name}: {alert.get_kind_display()}",
            message,
            settings.DEFAULT_FROM_EMAIL,
            recipients,
            fail_silently=True,
        )
    return alert


def evaluate(tenant, now=None) -> list[Alert]:
    """Check the current tenant schema's figures and raise what is due."""
    from audit.models import Amendment
    from gateway.models import CircuitState
    from usage.models import SoftLimitNotice, UsageRecord

    now = now or timezone.now()
    raised: list[Alert] = []

    def add(alert):
        if alert is not None:
            raised.append(alert)

    threshold = settings.SWITCHBOARD_ALERT_RATE_PERCENT
    minimum = settings.SWITCHBOARD_ALERT_MIN_CALLS
    for row in (
        UsageRecord.objects.filter(created_at__gte=now - RATE_LOOKBACK)
        .values("feature")
        .annotate(
            calls=Count("id"),
            errors=Count("id", filter=Q(status__in=["failed", "interrupted"])),
            fallbacks=Count("id", filter=Q(fallback_used=True)),
        )
    ):
        if row["calls"] < minimum:
            continue
        for kind, count in (
            (Alert.Kind.ERROR_RATE, row["errors"]),
            (Alert.Kind.FALLBACK_RATE, row["fallbacks"]),
        ):
            rate = 100 * count / row["calls"]
            if rate >= threshold:
                add(
                    raise_alert(
                        tenant=tenant,
                        kind=kind,
                        subject=row["feature"],
                        now=now,
                        message=f"{row['feature']}: {rate:.0f}% of {row['calls']} "
                        f"calls in the last 15 minutes ({kind.label.lower()}).",
                    )
                )
    for notice in SoftLimitNotice.objects.filter(created_at__gte=now - WINDOW):
        add(
            raise_alert(
                tenant=tenant,
                kind=Alert.Kind.SOFT_LIMIT,
                now=now,
                subject=f"{notice.scope_key}.{notice.metric}",
                message=f"{notice.scope_key} reached {notice.percent}% of its "
                f"{notice.metric} limit for {notice.period}.",
            )
        )

    def down_rate(start, end):
        rated = Amendment.objects.filter(created_at__gte=start, created_at__lt=end).exclude(
            rating=""
        )
        figures = rated.aggregate(
            n=Count("id"), down=Count("id", filter=Q(rating__in=["down", "1", "2"]))
        )
        return figures["n"], (100 * figures["down"] / figures["n"]) if figures["n"] else 0.0

    day = timedelta(hours=24)
    recent_n, recent = down_rate(now - day, now)
    _, before = down_rate(now - 2 * day, now - day)
    if recent_n >= minimum and recent - before >= settings.SWITCHBOARD_ALERT_RATE_PERCENT:
        add(
            raise_alert(
                tenant=tenant,
                kind=Alert.Kind.THUMBS_DOWN,
                subject="feedback",
                now=now,
                message=f"Thumbs-down rate rose from {before:.0f}% to "
                f"{recent:.0f}% ({recent_n} ratings in the last 24 hours).",
            )
        )
    used = set(
        UsageRecord.objects.filter(created_at__gte=now - day)
        .exclude(deployment="")
        .values_list("deployment", flat=True)
        .distinct()
    )
    for circuit in CircuitState.objects.filter(deployment__in=used).exclude(state="closed"):
        add(
            raise_alert(
                tenant=tenant,
                kind=Alert.Kind.CIRCUIT_OPEN,
                now=now,
                subject=circuit.deployment,
                message=f"Deployment {circuit.deployment} is {circuit.state} after "
                f"{circuit.consecutive_failures} failures; calls fall back.",
            )
        )
    return raised
