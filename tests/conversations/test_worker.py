"""End to end with a real Celery worker: appends past the budget through the API, and the
worker folds the older turns into the summary while the API keeps answering."""

import pytest

from conversations.models import Conversation
from tests.fixtures_shared import wait_until

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_worker_summarises_past_the_budget(client, tenant_a, routing, simulator, worker_process):
    env = {
        "SWITCHBOARD_CONVERSATION_TOKEN_BUDGET": "150",
        "SWITCHBOARD_CONVERSATION_RECENT_TOKENS": "60",
        "SWITCHBOARD_SUMMARY_ALIAS": "solo",
    }
    from django.conf import settings

    settings.SWITCHBOARD_CONVERSATION_TOKEN_BUDGET = 150
    settings.SWITCHBOARD_CONVERSATION_RECENT_TOKENS = 60
    worker_process(**env)
    created = client.post(
        "/api/v1/conversations",
        {"user": "alice"},
        content_type="application/json",
        **tenant_a.headers(),
    )
    conversation_id = created.json()["id"]
    simulator.script(["Alice is migrating 40 seats from the Basic plan to Teams in March."])
    for n in range(8):
        response = client.post(
            f"/api/v1/conversations/{conversation_id}/messages",
            {
                "user": "alice",
                "messages": [
                    {
                        "role": "user",
                        "content": f"Question {n}: can I move seat {n} to Teams? " * 3,
                    },
                    {"role": "assistant", "content": f"Yes, seat {n} can move at renewal. " * 3},
                ],
            },
            content_type="application/json",
            **tenant_a.headers(),
        )
        assert response.status_code == 201

    def summarised():
        with tenant_a.context():
            conversation = Conversation.objects.get(pk=conversation_id)
            return conversation if conversation.summary else None

    conversation = wait_until(summarised, timeout=60)
    assert conversation, "the worker never summarised"
    assert conversation.summary.startswith("Alice is migrating 40 seats")
    assert conversation.summarised_through > 0
    read = client.get(
        f"/api/v1/conversations/{conversation_id}?user=alice", **tenant_a.headers()
    ).json()
    assert read["summary"] == conversation.summary
    assert len(read["turns"]) == 16
