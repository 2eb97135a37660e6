"""Signed webhooks (Standard Webhooks: ``webhook-id``, ``webhook-timestamp``,
``webhook-signature`` = HMAC-SHA256, via the ``standardwebhooks`` library).

Deliveries are retried with growing delays for about a day, logged (status, duration, response
excerpt), can be redelivered by hand, and an endpoint that keeps failing is disabled with the
reason shown. Outbound calls refuse private, loopback and link-local addresses unless the
operator allows them (``SWITCHBOARD_WEBHOOKS_ALLOW_PRIVATE``).
"""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import secrets
import socket
import time
import uuid
from datetime import timedelta
from urllib.parse import urlparse

import httpx
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from standardwebhooks import Webhook

from gateway.errors import InvalidRequest
from jobs.models import WebhookDelivery, WebhookEndpoint

logger = logging.getLogger(__name__)

# Seconds before attempts 2..8: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (about 27 hours).
RETRY_DELAYS = (5, 300, 1800, 7200, 18000, 36000, 36000)
SECRET_OVERLAP = timedelta(hours=24)
TIMEOUT_SECONDS = 10.0


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class UnsafeDestination(Exception):
    pass


def check_destination(url: str) -> None:
    """Refuse URLs that resolve to private, loopback, link-local or reserved addresses."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise UnsafeDestination("only http(s) URLs with a host are allowed")
    if settings.SWITCHBOARD_WEBHOOKS_ALLOW_PRIVATE:
        return
    try:
        infos = socket.getaddrinfo(parsed.hostname, parsed.port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        raise UnsafeDestination(f"{parsed.hostname} does not resolve") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if (
            address.is_private
            or address.is_loopback
            or address.is_link_local
            or address.is_reserved
            or address.is_multicast
            or address.is_unspecified
        ):
            raise UnsafeDestination(f"{parsed.hostname} resolves to a non-public address")


def create_endpoint(
    *, url: str, events: list[str] | None = None, description: str = ""
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret (shown to the caller once)."""
    events = list(events or [])
    unknown = [e for e in events if e not in WebhookEndpoint.EVENTS]
    if unknown:
        raise InvalidRequest(f"Unknown event {unknown[0]!r}.", param="events")
    try:
        check_destination(url)
    except UnsafeDestination as exc:
        raise InvalidRequest(f"This URL is not allowed: {exc}.", param="url") from None
    secret = new_secret()
    endpoint = WebhookEndpoint.objects.create(
        url=url, events=events, secret=secret, description=description[:200]
    )
    return endpoint, secret


def rotate_secret(*, endpoint: WebhookEndpoint) -> str:
    """A new secret; the old one keeps signing (alongside) for a day, so receivers can switch."""
    secret = new_secret()
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = timezone.now() + SECRET_OVERLAP
    endpoint.secret = secret
    endpoint.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at"])
    return secret


def emit(event: str, data: dict) -> list[WebhookDelivery]:
    """Queue ``event`` for every endpoint of the current tenant that wants it."""
    deliveries = []
    for endpoint in WebhookEndpoint.objects.filter(enabled=True):
        if not endpoint.wants(event):
            continue
        msg_id = f"msg_{uuid.uuid4().hex}"
        payload = {"type": event, "timestamp": timezone.now().isoformat(), "data": data}
        delivery = WebhookDelivery.objects.create(
            endpoint=endpoint,
            msg_id=msg_id,
            event=event,
            payload=payload,
            next_attempt_at=timezone.now(),
        )
        deliveries.append(delivery)
        schema = connection.schema_name
        transaction.on_commit(lambda d=delivery, s=schema: _enqueue(s, d.id, 0))
    return deliveries


def _enqueue(schema: str, delivery_id: int, countdown: float) -> None:
    from jobs.tasks import deliver_webhook

    deliver_webhook.apply_async(args=[schema, delivery_id], countdown=countdown, queue="webhooks")


def _signature(endpoint: WebhookEndpoint, msg_id: str, body: str, when) -> str:
    signatures = [Webhook(endpoint.secret).sign(msg_id, when, body)]
    if (
        endpoint.previous_secret
        and endpoint.previous_secret_expires_at
        and endpoint.previous_secret_expires_at > timezone.now()
    ):
        signatures.append(Webhook(endpoint.previous_secret).sign(msg_id, when, body))
    return " ".join(signatures)


def attempt(delivery: WebhookDelivery) -> bool:
    """One delivery attempt, logged; schedules the next on failure. True when delivered."""
    endpoint = delivery.endpoint
    body = json.dumps(delivery.payload, separators=(",", ":"))
    now = timezone.now()
    headers = {
        "content-type": "application/json",
        "webhook-id": delivery.msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": _signature(endpoint, delivery.msg_id, body, now),
    }
    delivery.attempts += 1
    started = time.perf_counter()
    ok = False
    try:
        check_destination(endpoint.url)
        response = httpx.post(
            endpoint.url,
            content=body,
            headers=headers,
            timeout=TIMEOUT_SECONDS,
            follow_redirects=False,
        )
        delivery.last_status_code = response.status_code
        delivery.response_excerpt = response.text[:500]
        delivery.last_error = ""
        ok = 200 <= response.status_code < 300
    except UnsafeDestination as exc:
        delivery.last_error = f"refused: {exc}"[:300]
    except httpx.HTTPError as exc:
        delivery.last_error = f"{type(exc).__name__}: {exc}"[:300]
    delivery.last_duration_ms = round((time.perf_counter() - started) * 1000, 1)
    if ok:
        delivery.status = WebhookDelivery.Status.SUCCEEDED
        delivery.next_attempt_at = None
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(consecutive_failures=0)
    elif delivery.attempts <= len(RETRY_DELAYS):
        delay = RETRY_DELAYS[delivery.attempts - 1]
        delivery.next_attempt_at = now + timedelta(seconds=delay)
        transaction.on_commit(lambda: _enqueue(connection.schema_name, delivery.id, delay))
    else:
        delivery.status = WebhookDelivery.Status.FAILED
        delivery.next_attempt_at = None
        _count_failure(endpoint)
    delivery.save()
    return ok


def _count_failure(endpoint: WebhookEndpoint) -> None:
    endpoint.refresh_from_db()
    endpoint.consecutive_failures += 1
    fields = ["consecutive_failures"]
    if endpoint.consecutive_failures >= settings.SWITCHBOARD_WEBHOOK_DISABLE_AFTER:
        endpoint.enabled = False
        endpoint.disabled_reason = (
            f"Disabled after {endpoint.consecutive_failures} deliveries failed every retry "
            f"(last at {timezone.now():%Y-%m-%d %H:%M} UTC)."
        )
        fields += ["enabled", "disabled_reason"]
    endpoint.save(update_fields=fields)


def redeliver(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a delivery again now (also a failed one); the log keeps counting attempts."""
    delivery.status = WebhookDelivery.Status.PENDING
    attempt(delivery)
    return delivery
