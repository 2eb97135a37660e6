"""PII is replaced by placeholders before it leaves, and restored for the caller.

The unit tests need no database; the end-to-end tests at the bottom run the gateway."""

import copy
import json
import socket
import sys

import httpx
import openai
import pytest
from presidio_analyzer import Pattern, PatternRecognizer

from audit.models import AuditRecord
from gateway.guardrails.pii import (
    PiiBlocked,
    PiiVault,
    Redactor,
    apply_pii_policy,
    get_redactor,
    redact_for_storage,
    redact_messages,
)
from tenants import services as tenant_services
from tests.fixtures_gateway import wait_for

EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"
PHONE = "+1 415-555-0132"
IBAN = "DE89 3704 0044 0532 0130 00"
SSN = "536-22-1234"
IP = "203.0.113.7"
ALL_VALUES = [EMAIL, CARD, PHONE, IBAN, SSN, IP]
SUPPORT_TICKET = (
    "Hi team, since the update on 12/03/2024 the export of invoice INV-2024-0193 fails with "
    "error 502 after about 30 seconds. We are on plan Business v2.3, 14 seats, billed $1,234.56 "
    "per month. I tried Chrome 120 and Firefox 121 at 10:30 and again at 14:45, same result. "
    "Order #88231 was affected too. Could you look into it before Friday? Thanks, the ops team"
)


@pytest.fixture(scope="module")
def redactor():
    return get_redactor()


def found(redactor, text):
    return [(f.entity_type, text[f.start : f.end]) for f in redactor.find(text)]


@pytest.mark.parametrize(
    ("text", "entity", "value"),
    [
        (f"write to {EMAIL} today", "EMAIL_ADDRESS", EMAIL),
        ("write to ops@sub.example.co.uk today", "EMAIL_ADDRESS", "ops@sub.example.co.uk"),
        (f"call {PHONE} now", "PHONE_NUMBER", PHONE),
        ("call (415) 555-0132 now", "PHONE_NUMBER", "(415) 555-0132"),
        ("office 020 7946 0958 in London", "PHONE_NUMBER", "020 7946 0958"),
        ("Berlin +49 30 12345678 please", "PHONE_NUMBER", "+49 30 12345678"),
        (f"ssn {SSN} on file", "US_SSN", SSN),
        (f"card {CARD} expired", "CREDIT_CARD", CARD),
        ("card 4111-1111-1111-1111 expired", "CREDIT_CARD", "4111-1111-1111-1111"),
        ("amex 378282246310005 expired", "CREDIT_CARD", "378282246310005"),
        (f"iban {IBAN} for the refund", "IBAN_CODE", IBAN),
        (
            "iban GB82 WEST 1234 5698 7654 32 for the refund",
            "IBAN_CODE",
            "GB82 WEST 1234 5698 7654 32",
        ),
        (f"login from {IP} failed", "IP_ADDRESS", IP),
        ("login from 2001:db8::1 failed", "IP_ADDRESS", "2001:db8::1"),
    ],
)
def test_each_entity_type_is_found_with_its_exact_span(redactor, text, entity, value):
    assert found(redactor, text) == [(entity, value)]


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112 (fails Luhn)",
        "number 1234 5678 9012 3456 (fails Luhn)",
        "iban DE00 3704 0044 0532 0130 00 (bad check digits)",
        "iban DE89 3704 0044 0532 0130 01 (bad checksum)",
        "ssn 000-12-3456 (no area 000)",
        "ssn 666-12-3456 (no area 666)",
        "host 999.10.10.10 is not an address",
        "mail admin@localhost has no domain",
        "call 555-0132 (too short to be a whole number)",
        SUPPORT_TICKET,
    ],
)
def test_invalid_values_and_ordinary_text_are_not_pii(redactor, text):
    assert found(redactor, text) == []


def test_digits_inside_a_card_or_iban_are_not_also_a_phone_number(redactor):
    text = f"card {CARD}, iban {IBAN}, phone {PHONE}"
    assert found(redactor, text) == [
        ("CREDIT_CARD", CARD),
        ("IBAN_CODE", IBAN),
        ("PHONE_NUMBER", PHONE),
    ]


def test_entities_and_threshold_limit_what_is_found():
    text = f"{EMAIL}; {PHONE}; {IP}"
    assert found(Redactor(entities=["EMAIL_ADDRESS"]), text) == [("EMAIL_ADDRESS", EMAIL)]
    # IP addresses score 0.6 in Presidio, validated e-mails 1.0
    assert found(Redactor(score_threshold=0.7), text) == [
        ("EMAIL_ADDRESS", EMAIL),
        ("PHONE_NUMBER", PHONE),
    ]


def test_an_entity_type_without_a_recognizer_is_refused():
    with pytest.raises(ValueError, match="PERSON"):
        Redactor(entities=["EMAIL_ADDRESS", "PERSON"])
    with pytest.raises(ValueError, match="UK"):
        Redactor(phone_regions=["US", "UK"])  # the code is GB


def test_phone_regions_decide_which_national_formats_are_found():
    text = "London 020 7946 0958, Berlin 030 12345678, intl +44 20 7946 0958"
    assert found(Redactor(entities=["PHONE_NUMBER"], phone_regions=["US"]), text) == [
        ("PHONE_NUMBER", "+44 20 7946 0958")
    ]
    assert found(Redactor(entities=["PHONE_NUMBER"], phone_regions=["GB", "DE"]), text) == [
        ("PHONE_NUMBER", "020 7946 0958"),
        ("PHONE_NUMBER", "030 12345678"),
        ("PHONE_NUMBER", "+44 20 7946 0958"),
    ]


def test_extra_recognizers_add_entity_types_and_overlaps_go_to_the_longer_finding():
    person = PatternRecognizer(supported_entity="PERSON", deny_list=["Jane Doe"])
    # Overlaps the e-mail but is shorter and scores lower: the e-mail wins.
    short = PatternRecognizer(
        supported_entity="HANDLE", patterns=[Pattern("handle", r"jane\.doe", 0.9)]
    )
    # Covers the whole e-mail and more, with a lower score: the longer span wins.
    longer = PatternRecognizer(
        supported_entity="CONTACT",
        patterns=[Pattern("contact", r"contact: \S+@\S+", 0.6)],
    )
    entities = ["PERSON", "HANDLE", "CONTACT", "EMAIL_ADDRESS"]
    redactor = Redactor(entities=entities, extra_recognizers=[person, short, longer])
    assert found(redactor, f"Jane Doe wrote from {EMAIL}") == [
        ("PERSON", "Jane Doe"),
        ("EMAIL_ADDRESS", EMAIL),
    ]
    assert found(redactor, f"contact: {EMAIL}") == [("CONTACT", f"contact: {EMAIL}")]


def test_the_same_value_gets_one_placeholder_and_different_values_are_numbered(redactor):
    vault = PiiVault()
    text = f"{EMAIL} wrote; cc bob@example.org; reply to {EMAIL} or call {PHONE}"
    assert redactor.redact(text, vault) == (
        "<EMAIL_ADDRESS_1> wrote; cc <EMAIL_ADDRESS_2>; reply to <EMAIL_ADDRESS_1> "
        "or call <PHONE_NUMBER_1>"
    )
    assert vault.found == {"EMAIL_ADDRESS": 3, "PHONE_NUMBER": 1}
    assert not vault.is_empty()


def test_redact_then_restore_gives_back_the_original_text(redactor):
    text = "Customer " + ", ".join(ALL_VALUES) + f" and again {EMAIL}."
    vault = PiiVault()
    redacted = redactor.redact(text, vault)
    assert not any(value in redacted for value in ALL_VALUES)
    assert vault.restore(redacted) == text


def test_restore_replaces_every_echo_and_nothing_that_only_looks_similar(redactor):
    vault = PiiVault()
    redactor.redact(f"from {EMAIL}", vault)
    answer = (
        "Hello <EMAIL_ADDRESS_1>! We wrote to <EMAIL_ADDRESS_1>.<EMAIL_ADDRESS_1> "
        "Not <EMAIL_ADDRESS_10>, <EMAIL_ADDRESS_2>, <email_address_1>, < EMAIL_ADDRESS_1 >, "
        "<EMAIL_ADDRESS_1 > or <PHONE_NUMBER_1>."
    )
    assert vault.restore(answer) == (
        f"Hello {EMAIL}! We wrote to {EMAIL}.{EMAIL} "
        "Not <EMAIL_ADDRESS_10>, <EMAIL_ADDRESS_2>, <email_address_1>, < EMAIL_ADDRESS_1 >, "
        "<EMAIL_ADDRESS_1 > or <PHONE_NUMBER_1>."
    )


def test_placeholder_text_already_in_the_input_is_never_issued_nor_restored(redactor):
    messages = [
        {"role": "user", "content": f"My address is {EMAIL}"},
        {"role": "user", "content": "The template prints <EMAIL_ADDRESS_1> literally."},
    ]
    outbound, vault = apply_pii_policy(messages, "redact", redactor)
    assert outbound[0]["content"] == "My address is <EMAIL_ADDRESS_2>"
    assert vault.restore("<EMAIL_ADDRESS_1> then <EMAIL_ADDRESS_2>") == (
        f"<EMAIL_ADDRESS_1> then {EMAIL}"
    )


def test_restore_json_restores_strings_at_any_depth_and_leaves_other_values(redactor):
    vault = PiiVault()
    redactor.redact(f"{EMAIL} {PHONE}", vault)
    parsed = {
        "to": ["<EMAIL_ADDRESS_1>", {"phone": "call <PHONE_NUMBER_1> twice: <PHONE_NUMBER_1>"}],
        "<EMAIL_ADDRESS_1>": 3,
        "flags": [True, None, 1.5],
    }
    assert vault.restore_json(parsed) == {
        "to": [EMAIL, {"phone": f"call {PHONE} twice: {PHONE}"}],
        EMAIL: 3,
        "flags": [True, None, 1.5],
    }
    assert parsed["to"][0] == "<EMAIL_ADDRESS_1>"


def test_redact_messages_handles_list_content_and_tool_calls_without_touching_originals(
    redactor,
):
    messages = [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": f"I am {EMAIL}"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                {"type": "text", "text": f"and {EMAIL} again, card {CARD}"},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": json.dumps({"ip": IP})},
                }
            ],
        },
    ]
    before = copy.deepcopy(messages)
    vault = PiiVault()
    out = redact_messages(messages, redactor, vault)
    assert messages == before
    assert out[0] == before[0]
    parts = out[1]["content"]
    assert parts[0] == {"type": "text", "text": "I am <EMAIL_ADDRESS_1>"}
    assert parts[1] == before[1]["content"][1]
    assert parts[2]["text"] == "and <EMAIL_ADDRESS_1> again, card <CREDIT_CARD_1>"
    assert json.loads(out[2]["tool_calls"][0]["function"]["arguments"]) == {"ip": "<IP_ADDRESS_1>"}
    assert out[2]["content"] is None
    assert vault.found == {"EMAIL_ADDRESS": 2, "CREDIT_CARD": 1, "IP_ADDRESS": 1}


def test_block_mode_refuses_pii_and_names_the_types(redactor):
    messages = [{"role": "user", "content": f"card {CARD}, mail {EMAIL}"}]
    with pytest.raises(PiiBlocked) as blocked:
        apply_pii_policy(messages, "block", redactor)
    assert blocked.value.entity_types == ["CREDIT_CARD", "EMAIL_ADDRESS"]
    assert blocked.value.found == {"CREDIT_CARD": 1, "EMAIL_ADDRESS": 1}
    assert CARD not in str(blocked.value) and EMAIL not in str(blocked.value)


def test_block_mode_lets_text_without_pii_through(redactor):
    messages = [{"role": "user", "content": SUPPORT_TICKET}]
    outbound, vault = apply_pii_policy(messages, "block", redactor)
    assert outbound == messages and vault.found == {}


def test_allow_mode_sends_originals_and_records_what_it_found(redactor):
    messages = [{"role": "user", "content": [{"type": "text", "text": f"{EMAIL} / {PHONE}"}]}]
    outbound, vault = apply_pii_policy(messages, "allow", redactor)
    assert outbound == messages and outbound is not messages
    assert vault.found == {"EMAIL_ADDRESS": 1, "PHONE_NUMBER": 1}
    assert vault.is_empty()  # nothing was replaced, so nothing to restore


def test_an_unknown_mode_is_refused(redactor):
    with pytest.raises(ValueError, match="mask"):
        apply_pii_policy([{"role": "user", "content": "hi"}], "mask", redactor)


def test_redact_for_storage_keeps_no_raw_value():
    text = "Customer " + " | ".join(ALL_VALUES) + f" repeated {EMAIL}"
    stored = redact_for_storage(text)
    assert not any(value in stored for value in ALL_VALUES)
    for placeholder in ("<EMAIL_ADDRESS_1>", "<CREDIT_CARD_1>", "<PHONE_NUMBER_1>"):
        assert placeholder in stored
    assert stored.count("<EMAIL_ADDRESS_1>") == 2
    assert redact_for_storage(SUPPORT_TICKET) == SUPPORT_TICKET


def test_the_redactor_is_built_once_per_process():
    assert get_redactor() is get_redactor()


def test_redactor_works_offline_without_a_language_model(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert found(Redactor(), f"mail {EMAIL}") == [("EMAIL_ADDRESS", EMAIL)]
    # An AnalyzerEngine with its default NLP engine would have loaded a spaCy English pipeline.
    assert "spacy.lang.en" not in sys.modules


# End to end, through the gateway


@pytest.mark.django_db(transaction=True)
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


@pytest.mark.django_db(transaction=True)
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


@pytest.mark.django_db(transaction=True)
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
        assert record.pii_found == {"EMAIL_ADDRESS": 1}
