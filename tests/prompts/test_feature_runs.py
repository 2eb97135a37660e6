"""Feature runs through the gateway: contracts, corrective retry, fallback, 422, degraded."""

import json

import pytest

from audit.models import AuditRecord
from prompts.models import Feature
from tests.fixtures_gateway import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

TICKET = {"subject": "Refund please", "body": "I was charged twice in March."}


def test_sync_run_answers_with_the_run(features, run, simulator, routing):
    response = run("ticket-classifier", {"input": TICKET, "user": "u-1"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["output"] == {"label": "billing"}
    assert body["prompt_version"] == "default@1.0.0"
    assert body["deployment"] == routing.primary
    assert body["id"].startswith("run_") and not body["degraded"]
    sent = simulator.requests[-1]["json"]
    assert sent["response_format"]["json_schema"]["schema"]["properties"]["label"]["enum"] == [
        "billing",
        "technical",
        "account",
        "other",
    ]
    roles = [m["role"] for m in sent["messages"]]
    assert roles[0] == "system" and roles[-1] == "user"
    assert "<user_input>" in sent["messages"][-1]["content"]
    assert "charged twice" not in sent["messages"][0]["content"]  # never in the system prompt


def test_invalid_output_gets_one_corrective_retry(features, run, simulator, routing, tenant_a):
    simulator.script(['{"label": "spam"}', '{"label": "technical"}'])
    response = run("ticket-classifier", {"input": TICKET})
    assert response.status_code == 200, response.text
    assert response.json()["output"] == {"label": "technical"}
    assert simulator.request_count("/v1/chat/completions") == 2
    correction = simulator.requests[-1]["json"]["messages"][-1]["content"]
    assert "'spam' is not one of billing" in correction
    with tenant_a.context():
        record = wait_for(lambda: AuditRecord.objects.filter(call_id=response.json()["id"]).first())
    assert [a["outcome"] for a in record.attempts] == ["invalid_output", "ok"]


def test_still_invalid_after_correction_falls_back(features, run, simulator, simulator_b, routing):
    simulator.script(['{"label": "spam"}', "not even json"])
    response = run("ticket-classifier", {"input": TICKET})
    assert response.status_code == 200, response.text
    assert response.json()["deployment"] == routing.secondary
    tool = simulator_b.requests[-1]["json"]["tools"][0]
    assert tool["input_schema"]["properties"]["label"]["enum"][0] == "billing"


def test_nothing_valid_is_422(features, run, simulator, simulator_b, routing):
    simulator.script(['{"label": "spam"}'] * 2)
    simulator_b.script([{"tool_input": {"label": "nope"}}] * 2)
    response = run("ticket-classifier", {"input": TICKET})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "output_validation_failed"


def test_outage_gives_the_degraded_answer_when_allowed(
    features, run, simulator, simulator_b, routing
):
    simulator.set_fault("down")
    simulator_b.set_fault("down")
    response = run("summarizer", {"input": {"conversation": "Customer: it broke."}})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["degraded"] is True
    assert body["output"] == "A summary is not available right now."


def test_outage_without_degraded_answer_is_503(features, run, simulator, simulator_b, routing):
    simulator.set_fault("down")
    simulator_b.set_fault("down")
    response = run("ticket-classifier", {"input": TICKET})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "upstream_unavailable"


@pytest.mark.parametrize(
    ("data", "param"),
    [
        ({"subject": "x"}, "input.body"),
        ({"subject": "x", "body": "y", "extra": "z"}, "input.extra"),
        ({"subject": "", "body": "y"}, "input.subject"),
    ],
)
def test_variables_are_checked(features, run, routing, data, param):
    response = run("ticket-classifier", {"input": data})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


@pytest.mark.parametrize(
    "body", [{}, {"input": "text"}, {"input": {}, "mode": "later"}, {"input": {}, "user": 5}, []]
)
def test_bad_run_bodies_are_400(features, run, routing, body):
    assert run("ticket-classifier", body).status_code == 400


def test_unknown_feature_is_404(features, run, routing):
    response = run("nope", {"input": {}})
    assert response.status_code == 404


def test_fabricated_citations_are_removed_and_flagged(features, run, simulator, routing, tenant_a):
    simulator.script(
        [
            json.dumps(
                {
                    "answer": "See the guide.",
                    "citations": ["doc-404"],
                    "cannot_answer": False,
                    "confidence": 0.9,
                }
            )
        ]
    )
    response = run("support-answer", {"input": {"question": "How do I export?"}})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["citations"] == [] and "citation_removed" in body["flags"]


def test_stream_run_sends_events(features, run, routing):
    response = run("summarizer", {"input": {"conversation": "a b c d"}, "mode": "stream"})
    assert response.status_code == 200
    text = response.text
    assert text.startswith("event: run") and "event: delta" in text and "event: done" in text


def test_tenant_override_beats_the_default_for_that_tenant_only(
    features, run, tenant_a, tenant_b, simulator
):
    from prompts import services

    with tenant_a.context():
        feature = Feature.objects.get(slug="summarizer")
        default = feature.deployment.active_version
        mine = services.customise_from(version=default, actor=services.Actor(1, "cs"))
        services.update_draft(version=mine, system="You are Acme's summariser. Be terse.")
        services.publish(version=mine, actor=services.Actor(1, "cs"), reason="tone")
    try:
        a = run("summarizer", {"input": {"conversation": "hello"}})
        assert a.json()["prompt_version"] == mine.label
        assert "Acme's summariser" in simulator.requests[-1]["json"]["messages"][0]["content"]
        b = run("summarizer", {"input": {"conversation": "hello"}}, tenant=tenant_b)
        assert b.json()["prompt_version"] == "default@1.0.0"
    finally:
        with tenant_a.context():
            services.publish(version=default, actor=services.Actor(1, "cs"), reason="restore")
