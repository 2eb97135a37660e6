"""PII is replaced by placeholders before it leaves, and restored for the caller."""

import json

import httpx
import openai
import pytest

from audit.models import AuditRecord
from gateway.guardrails.pii import PiiVault, Redactor, apply_pii_policy
from tenants import services as tenant_services
from tests.fixtures_gateway import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"


def test_pii_never_reaches_the_provider_and_comes_back_restored(
    openai_client, simulator, tenant_a, routing
):
    response = openai_client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": f"Mail {EMAIL} card {CARD}"}]
    )
    sent = json.dumps(simulator.requests)
    assert EMAIL not in sent and CARD not in sent
    assert "<EMAIL_ADDRESS_1>" in sent
    # the simulator echoes the question; the caller sees the originals again
    assert EMAIL in response.choices[0].message.content
    with tenant_a.context():
        record = wait_for(lambda: AuditRecord.objects.filter(call_id=response.id).first())
        stored = json.dumps([record.input_messages, record.raw_output])
    assert EMAIL not in stored and CARD not in stored
    assert record.pii_found == {"EMAIL_ADDRESS": 1, "CREDIT_CARD": 1}


def test_block_policy_refuses_pii(asgi_server, tenant_b, routing, simulator):
    tenant_services.update_tenant_settings(tenant=tenant_b.tenant, pii_mode="block")
    try:
        response = httpx.post(
            asgi_server.url + "/v1/chat/completions",
            json={"model": "chat", "messages": [{"role": "user", "content": f"I am {EMAIL}"}]},
            headers={"Authorization": f"Bearer {tenant_b.key}"},
        )
    finally:
        tenant_services.update_tenant_settings(tenant=tenant_b.tenant, pii_mode="redact")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "pii_blocked"
    assert simulator.request_count() == 0


def test_allow_policy_sends_originals_but_stores_redacted(
    asgi_server, tenant_b, routing, simulator
):
    tenant_services.update_tenant_settings(tenant=tenant_b.tenant, pii_mode="allow")
    try:
        client = openai.OpenAI(base_url=asgi_server.url + "/v1", api_key=tenant_b.key)
        response = client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": f"I am {EMAIL}"}]
        )
    finally:
        tenant_services.update_tenant_settings(tenant=tenant_b.tenant, pii_mode="redact")
    assert EMAIL in json.dumps(simulator.requests)
    with tenant_b.context():
        record = wait_for(lambda: AuditRecord.objects.filter(call_id=response.id).first())
        assert EMAIL not in json.dumps(record.input_messages)


@pytest.mark.parametrize(
    ("text", "entity"),
    [
        ("call +1 415-555-0132 now", "PHONE_NUMBER"),
        ("ssn 536-22-1234", "US_SSN"),
        ("iban DE89 3704 0044 0532 0130 00", "IBAN_CODE"),
        ("from 203.0.113.7", "IP_ADDRESS"),
        ("card 4111-1111-1111-1111", "CREDIT_CARD"),
    ],
)
def test_each_entity_type_is_found(text, entity):
    assert entity in {f.entity_type for f in Redactor().find(text)}


def test_invalid_checksums_are_not_pii():
    found = Redactor().find("card 4111 1111 1111 1112 and iban DE00 3704 0044 0532 0130 00")
    assert not {f.entity_type for f in found} & {"CREDIT_CARD", "IBAN_CODE"}


def test_same_value_gets_the_same_placeholder_and_restores():
    vault = PiiVault()
    out, vault = apply_pii_policy(
        [{"role": "user", "content": f"{EMAIL} and again {EMAIL}"}], "redact", Redactor()
    )
    assert out[0]["content"] == "<EMAIL_ADDRESS_1> and again <EMAIL_ADDRESS_1>"
    assert (
        vault.restore("Reply to <EMAIL_ADDRESS_1>, not <EMAIL_ADDRESS_9>")
        == f"Reply to {EMAIL}, not <EMAIL_ADDRESS_9>"
    )
    assert vault.restore_json({"to": ["<EMAIL_ADDRESS_1>"]}) == {"to": [EMAIL]}
