"""Conversation memory: past the token budget, older turns are folded into a running summary by
the summariser alias through the gateway (off the request path), and the prompt gets the summary
plus the recent turns; appends in parallel never collide; a summariser outage loses nothing."""

import threading
import time

import pytest
from django.db import connection

from conversations import services
from conversations.models import Conversation, Turn
from usage.models import UsageRecord

SENTENCE = "The customer asked about exporting invoices for account {n} as CSV files. "


@pytest.fixture
def small_budget(settings, routing):
    settings.SWITCHBOARD_CONVERSATION_TOKEN_BUDGET = 200
    settings.SWITCHBOARD_CONVERSATION_RECENT_TOKENS = 80
    settings.SWITCHBOARD_SUMMARY_ALIAS = "solo"
    settings.SWITCHBOARD_DEFERRED_RECORDING = False
    return settings


def _turns(count: int, start: int = 0) -> list[services.NewTurn]:
    return [
        services.NewTurn(
            role="user" if n % 2 == 0 else "assistant",
            content=SENTENCE.format(n=n) * 2,
        )
        for n in range(start, start + count)
    ]


@pytest.mark.django_db(transaction=True)
def test_compression_starts_past_the_budget(small_budget, tenant_a, simulator):
    with tenant_a.context():
        conversation = services.create_conversation(end_user="alice")
        services.append_turns(conversation=conversation, turns=_turns(3))
        assert conversation.open_tokens <= 200
        assert conversation.summary_requested_at is None  # under budget: nothing queued

        services.append_turns(conversation=conversation, turns=_turns(6, start=3))
        assert conversation.open_tokens > 200
        # The summary is queued for a worker, not made in the request.
        assert conversation.summary_requested_at is not None
        assert simulator.requests == []

        simulator.script(["Alice asked about CSV exports of invoices for accounts 0 to 6."])
        outcome = services.summarise_conversation(
            conversation_id=conversation.pk, tenant=tenant_a.tenant
        )
        assert outcome.status == "summarised"
        conversation.refresh_from_db()
        assert conversation.summary.startswith("Alice asked about CSV exports")
        assert conversation.summaries_made == 1
        assert 0 < conversation.summarised_through < conversation.turn_count
        kept = Turn.objects.filter(
            conversation=conversation, ordinal__gt=conversation.summarised_through
        )
        assert conversation.open_tokens == sum(t.token_count for t in kept) <= 80
        assert Turn.objects.filter(conversation=conversation).count() == 9  # nothing deleted

        history = services.history_messages(conversation=conversation)
        assert "<conversation_summary>" in history[0]["content"]
        assert len(history) == 1 + kept.count()
        assert "account 8" in history[-1]["content"]  # newest last

        # The summariser call went through the gateway, attributed to the user.
        sent = simulator.requests[-1]["json"]["messages"]
        assert "account 0" in sent[-1]["content"]
        record = UsageRecord.objects.get(feature="conversation-summary")
        assert record.end_user == "alice"
        assert record.input_tokens > 0


@pytest.mark.django_db(transaction=True)
def test_a_second_summary_folds_the_first_into_it(small_budget, tenant_a, simulator):
    with tenant_a.context():
        conversation = services.create_conversation(end_user="alice")
        services.append_turns(conversation=conversation, turns=_turns(9))
        simulator.script(["First summary."])
        services.summarise_conversation(conversation_id=conversation.pk, tenant=tenant_a.tenant)
        first_through = Conversation.objects.get(pk=conversation.pk).summarised_through
        services.append_turns(conversation=conversation, turns=_turns(9, start=9))
        simulator.script(["Second summary."])
        services.summarise_conversation(conversation_id=conversation.pk, tenant=tenant_a.tenant)
        conversation.refresh_from_db()
        assert conversation.summary == "Second summary."
        assert conversation.summarised_through > first_through
        sent = simulator.requests[-1]["json"]["messages"][-1]["content"]
        assert "First summary." in sent  # the running summary carries forward
        assert "account 0 " not in sent  # already folded turns are not resent


@pytest.mark.django_db(transaction=True)
def test_summariser_outage_loses_nothing_and_the_prompt_stays_in_budget(
    small_budget, tenant_a, simulator
):
    with tenant_a.context():
        conversation = services.create_conversation(end_user="alice")
        services.append_turns(conversation=conversation, turns=_turns(12))
        simulator.set_fault("status", status=503)
        outcome = services.summarise_conversation(
            conversation_id=conversation.pk, tenant=tenant_a.tenant
        )
        assert outcome.status == "failed"
        conversation.refresh_from_db()
        assert conversation.summary == ""
        assert conversation.summary_error
        assert conversation.turns.count() == 12
        history = services.history_messages(conversation=conversation)
        tokens = sum(t.token_count for t in conversation.turns.order_by("-ordinal")[: len(history)])
        assert tokens <= 200
        assert "account 11" in history[-1]["content"]


@pytest.mark.django_db(transaction=True)
def test_a_summary_overtaken_by_another_is_discarded(small_budget, tenant_a, simulator):
    with tenant_a.context():
        conversation = services.create_conversation(end_user="alice")
        services.append_turns(conversation=conversation, turns=_turns(9))
    # The first summariser's model call is slow; a second one starts later and lands first.
    simulator.set_fault("latency", seconds=0.8, count=1)
    outcomes: dict[str, str] = {}

    def summarise(name: str) -> None:
        try:
            with tenant_a.context():
                outcomes[name] = services.summarise_conversation(
                    conversation_id=conversation.pk, tenant=tenant_a.tenant
                ).status
        finally:
            connection.close()

    slow = threading.Thread(target=summarise, args=("slow",))
    slow.start()
    time.sleep(0.3)
    summarise("fast")
    slow.join()
    assert outcomes == {"fast": "summarised", "slow": "superseded"}
    with tenant_a.context():
        assert Conversation.objects.get(pk=conversation.pk).summaries_made == 1


@pytest.mark.django_db(transaction=True)
def test_parallel_appends_get_consecutive_ordinals(small_budget, tenant_a):
    with tenant_a.context():
        conversation = services.create_conversation(end_user="alice")
    errors: list[BaseException] = []

    def append(n: int) -> None:
        try:
            with tenant_a.context():
                services.append_turns(conversation=conversation, turns=_turns(2, start=n * 2))
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=append, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with tenant_a.context():
        conversation.refresh_from_db()
        ordinals = list(conversation.turns.values_list("ordinal", flat=True))
        assert ordinals == list(range(1, 17))
        assert conversation.turn_count == 16
        assert conversation.open_tokens == sum(
            conversation.turns.values_list("token_count", flat=True)
        )
