"""Signed webhooks: Standard Webhooks signatures, retries, redelivery, refusal of private
addresses, disabling after persistent failure."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from standardwebhooks import Webhook

from jobs import webhooks
from jobs.models import WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db(transaction=True)


class Receiver:
    """A real HTTP receiver on loopback that records what it gets and answers ``status``."""

    def __init__(self):
        self.status = 200
        self.received: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.status)
                self.end_headers()
                self.wfile.write(b"thanks")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver(settings):
    settings.SWITCHBOARD_WEBHOOKS_ALLOW_PRIVATE = True  # the receiver is on loopback
    r = Receiver()
    yield r
    r.server.shutdown()


@pytest.fixture
def api(asgi_server, tenant_a):
    headers = {"Authorization": f"Bearer {tenant_a.key}"}

    def call(method, path, body=None):
        return httpx.request(method, asgi_server.url + path, json=body, headers=headers, timeout=30)

    return call


def test_signature_verifies_with_the_standard_webhooks_algorithm(api, receiver, tenant_a):
    created = api("POST", "/api/v1/webhooks", {"url": receiver.url, "events": ["job.failed"]})
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    listed = api("GET", "/api/v1/webhooks").json()
    assert "secret" not in listed[0]  # shown once
    with tenant_a.context():
        (delivery,) = [
            d
            for d in webhooks.emit("job.failed", {"job_id": "j1"})
            if d.endpoint_id == created.json()["id"]
        ]
        assert webhooks.attempt(delivery)
    headers, body = receiver.received[-1]
    payload = Webhook(secret).verify(body, headers)
    assert payload["type"] == "job.failed" and payload["data"] == {"job_id": "j1"}
    assert headers["webhook-id"] == delivery.msg_id


def test_failing_receiver_gets_retries_and_redelivery_succeeds(api, receiver, tenant_a):
    created = api("POST", "/api/v1/webhooks", {"url": receiver.url}).json()
    receiver.status = 500
    with tenant_a.context():
        (delivery,) = [
            d
            for d in webhooks.emit("quota.soft_limit", {"limit": "x"})
            if d.endpoint_id == created["id"]
        ]
        assert not webhooks.attempt(delivery)
        delivery.refresh_from_db()
        assert delivery.status == "pending" and delivery.attempts == 1
        assert delivery.last_status_code == 500 and delivery.next_attempt_at is not None
        assert not webhooks.attempt(delivery)  # the second try, 5 s later in production
    log = api("GET", f"/api/v1/webhooks/{created['id']}/deliveries").json()
    assert log[0]["attempts"] == 2 and log[0]["response_excerpt"] == "thanks"
    receiver.status = 204
    again = api("POST", f"/api/v1/webhooks/deliveries/{delivery.id}/redeliver")
    assert again.status_code == 200 and again.json()["status"] == "succeeded"
    assert len([r for r in receiver.received if b"quota.soft_limit" in r[1]]) == 3


def test_private_addresses_are_refused(api, settings):
    settings.SWITCHBOARD_WEBHOOKS_ALLOW_PRIVATE = False
    for url in (
        "http://10.1.2.3/hook",
        "http://127.0.0.1:9/hook",
        "http://169.254.169.254/",
        "http://[::1]/hook",
        "ftp://example.com/",
    ):
        response = api("POST", "/api/v1/webhooks", {"url": url})
        assert response.status_code == 400, url
        assert response.json()["error"]["param"] == "url"


def test_delivery_to_a_private_address_is_refused_at_send_time(receiver, tenant_a, settings):
    with tenant_a.context():
        endpoint, _ = webhooks.create_endpoint(url=receiver.url)
        settings.SWITCHBOARD_WEBHOOKS_ALLOW_PRIVATE = False
        (delivery,) = [
            d
            for d in webhooks.emit("job.succeeded", {"job_id": "x"})
            if d.endpoint_id == endpoint.id
        ]
        assert not webhooks.attempt(delivery)
        delivery.refresh_from_db()
    assert delivery.last_error.startswith("refused") and receiver.received == []


def test_endpoint_disabled_after_persistent_failure(receiver, tenant_a, settings):
    settings.SWITCHBOARD_WEBHOOK_DISABLE_AFTER = 2
    receiver.status = 503
    with tenant_a.context():
        endpoint, _ = webhooks.create_endpoint(url=receiver.url)
        for _ in range(2):
            (delivery,) = [
                d for d in webhooks.emit("job.failed", {}) if d.endpoint_id == endpoint.id
            ]
            for _ in range(len(webhooks.RETRY_DELAYS) + 1):
                webhooks.attempt(delivery)
            assert WebhookDelivery.objects.get(pk=delivery.pk).status == "failed"
        endpoint.refresh_from_db()
    assert not endpoint.enabled and "Disabled after 2" in endpoint.disabled_reason


def test_rotation_signs_with_both_secrets_during_the_overlap(receiver, tenant_a):
    with tenant_a.context():
        endpoint, old = webhooks.create_endpoint(url=receiver.url)
        new = webhooks.rotate_secret(endpoint=WebhookEndpoint.objects.get(pk=endpoint.pk))
        (delivery,) = [
            d for d in webhooks.emit("job.failed", {"n": 1}) if d.endpoint_id == endpoint.id
        ]
        assert webhooks.attempt(delivery)
    headers, body = receiver.received[-1]
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert Webhook(old).verify(body, headers) == Webhook(new).verify(body, headers)
    assert json.loads(body)["data"] == {"n": 1}


def test_console_creates_shows_the_secret_once_and_notices_disabled(receiver, tenant_b):
    from django.test import Client

    from tenants import services as tenant_services

    user = tenant_services.create_staff_user(
        username="hook-admin", email="", password="H00k-admin-pw"
    )
    tenant_services.set_membership(user=user, tenant=tenant_b.tenant, role="admin")
    client = Client()
    client.force_login(user)
    page = client.post(
        f"/t/{tenant_b.slug}/webhooks/", {"url": receiver.url, "events": ["job.failed"]}
    ).content.decode()
    assert 'id="webhook-secret"' in page and "whsec_" in page
    listing = client.get(f"/t/{tenant_b.slug}/webhooks/").content.decode()
    assert receiver.url in listing and "whsec_" not in listing
    with tenant_b.context():
        WebhookEndpoint.objects.filter(url=receiver.url).update(
            enabled=False, disabled_reason="Disabled after 5 deliveries failed every retry"
        )
    assert (
        "is disabled: Disabled after 5"
        in client.get(f"/t/{tenant_b.slug}/webhooks/").content.decode()
    )
