"""Feature runs with a ``conversation_id``: the prompt gets the conversation's summary and recent
turns, the run's input and answer are remembered (once), only the conversation's end user may
continue it, and a degraded or interrupted answer is not remembered."""

import pytest

from conversations import services
from conversations.models import Conversation, Turn
from jobs.models import Job

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def conversation(tenant_a):
    with tenant_a.context():
        made = services.create_conversation(end_user="alice")
    yield made
    with tenant_a.context():
        Conversation.objects.filter(pk=made.pk).delete()


def _turns(tenant, conversation) -> list[tuple[str, str, str]]:
    with tenant.context():
        return [
            (t.role, t.content, t.run_id)
            for t in Turn.objects.filter(conversation_id=conversation.pk).order_by("ordinal")
        ]


def _summarise(text: str, conversation_id: str | None, **extra) -> dict:
    body = {"input": {"conversation": text}, "user": "alice", **extra}
    if conversation_id:
        body["conversation_id"] = conversation_id
    return body


def test_a_run_in_a_conversation_sees_and_extends_its_history(
    features, run, simulator, tenant_a, conversation
):
    simulator.script(["Alice cannot export invoices.", "Still the CSV export, now for March."])
    first = run("summarizer", _summarise("Export is broken", conversation.pk))
    assert first.status_code == 200, first.text
    turns = _turns(tenant_a, conversation)
    assert turns == [
        ("user", "Conversation:\nExport is broken", first.json()["id"]),
        ("assistant", "Alice cannot export invoices.", first.json()["id"]),
    ]

    second = run("summarizer", _summarise("And for March?", conversation.pk))
    assert second.status_code == 200, second.text
    sent = simulator.requests[-1]["json"]["messages"]
    # instructions, then the remembered exchange, then the new input, in that order
    assert sent[0]["role"] == "system"
    assert sent[1]["role"] == "user" and "Export is broken" in sent[1]["content"]
    assert "<user_input>" in sent[1]["content"]  # remembered user text stays delimited
    assert sent[2] == {"role": "assistant", "content": "Alice cannot export invoices."}
    assert "And for March?" in sent[-1]["content"] and len(sent) == 4
    assert len(_turns(tenant_a, conversation)) == 4


def test_a_run_without_a_conversation_remembers_nothing(
    features, run, simulator, tenant_a, conversation
):
    response = run("summarizer", _summarise("Export is broken", None))
    assert response.status_code == 200, response.text
    assert len(simulator.requests[-1]["json"]["messages"]) == 2
    assert _turns(tenant_a, conversation) == []


@pytest.mark.parametrize(
    ("user", "status", "code"),
    [("mallory", 404, "conversation_not_found"), ("", 400, None)],
)
def test_only_the_conversations_user_may_run_in_it(
    features, run, simulator, tenant_a, conversation, user, status, code
):
    before = len(simulator.requests)
    body = _summarise("Read me Alice's history", conversation.pk, user=user)
    for mode in ("sync", "stream", "async"):
        response = run("summarizer", {**body, "mode": mode})
        assert response.status_code == status, (mode, response.text)
        error = response.json()["error"]
        assert error["param"] in ("conversation_id", "user")
        if code:
            assert error["code"] == code
    assert len(simulator.requests) == before  # refused before any provider call
    assert _turns(tenant_a, conversation) == []
    with tenant_a.context():
        assert not Job.objects.filter(conversation_id=conversation.pk).exists()


def test_a_degraded_answer_is_not_remembered(
    features, run, simulator, simulator_b, tenant_a, conversation
):
    simulator.set_fault("down")
    simulator_b.set_fault("down")
    response = run("summarizer", _summarise("Export is broken", conversation.pk))
    assert response.status_code == 200, response.text
    assert response.json()["degraded"] is True
    assert _turns(tenant_a, conversation) == []


def test_a_streamed_run_is_remembered_when_it_completes(
    features, run, simulator, tenant_a, conversation
):
    simulator.script(["Alice cannot export invoices."])
    response = run("summarizer", _summarise("Export is broken", conversation.pk, mode="stream"))
    assert response.status_code == 200
    assert "event: done" in response.text
    roles = [(role, content) for role, content, _ in _turns(tenant_a, conversation)]
    assert roles == [
        ("user", "Conversation:\nExport is broken"),
        ("assistant", "Alice cannot export invoices."),
    ]


def test_a_stream_cut_mid_answer_is_not_remembered(
    features, run, simulator, simulator_b, tenant_a, conversation
):
    simulator.set_fault("midstream_failure", after_chunks=1)
    simulator_b.set_fault("midstream_failure", after_chunks=1)
    response = run("summarizer", _summarise("Export is broken", conversation.pk, mode="stream"))
    assert "event: error" in response.text and "event: done" not in response.text
    assert _turns(tenant_a, conversation) == []


def test_an_async_run_continues_its_conversation(features, run, simulator, tenant_a, conversation):
    from jobs import services as jobs

    simulator.script(["Alice cannot export invoices."])
    body = _summarise("Export is broken", conversation.pk, mode="async", cache={"bypass": True})
    response = run("summarizer", body)
    assert response.status_code == 202, response.text
    with tenant_a.context():
        job = Job.objects.get(pk=response.json()["job_id"])
        assert job.conversation_id == conversation.pk
        assert job.cache_options == {"bypass": True}
        jobs.run_job(tenant_a.tenant, job.id)  # what the worker does with it
        job.refresh_from_db()
    assert job.status == "succeeded", job.error
    assert _turns(tenant_a, conversation) == [
        ("user", "Conversation:\nExport is broken", job.call_id),
        ("assistant", "Alice cannot export invoices.", job.call_id),
    ]


def test_a_retried_run_is_remembered_once(tenant_a, conversation):
    with tenant_a.context():
        for _ in range(2):  # a job attempt that recorded its exchange, then died, then re-ran
            services.record_exchange(
                conversation=conversation,
                user_text="Export is broken",
                answer_text="Alice cannot export invoices.",
                run_id="run_same",
            )
    assert [role for role, _, _ in _turns(tenant_a, conversation)] == ["user", "assistant"]
