"""The official openai SDK against a running Switchboard in front of the fake providers."""

import openai
import pytest

from tests.fixtures_gateway import wait_for
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)


def test_chat_completion_through_the_sdk(openai_client, tenant_a, simulator, routing):
    response = openai_client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
    )
    assert response.choices[0].message.content.startswith("Simulated answer:")
    assert response.usage.total_tokens > 0
    raw = response.model_extra["switchboard"]
    assert raw["deployment"] == routing.primary
    assert simulator.request_count("/v1/chat/completions") == 1

    def find():
        with tenant_a.context():
            return UsageRecord.objects.filter(call_id=response.id).first()

    record = wait_for(find)
    assert record.deployment == routing.primary
    assert record.input_tokens == response.usage.prompt_tokens


def test_stream_is_served_token_by_token(openai_client, routing):
    stream = openai_client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "one two three four five"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    deltas, usage = [], None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            deltas.append(chunk.choices[0].delta.content)
        if chunk.usage:
            usage = chunk.usage
    assert len(deltas) >= 5
    assert "".join(deltas).startswith("Simulated answer: one two")
    assert usage is not None and usage.completion_tokens > 0


def test_embeddings_through_the_sdk(openai_client, routing):
    response = openai_client.embeddings.create(
        model="embed", input=["alpha", "beta"], dimensions=16
    )
    assert [len(d.embedding) for d in response.data] == [16, 16]


def test_models_lists_the_callers_aliases(openai_client, routing):
    ids = {m.id for m in openai_client.models.list()}
    assert {"chat", "solo", "embed"} <= ids


def test_unknown_model_is_404_in_openai_shape(openai_client, routing):
    with pytest.raises(openai.NotFoundError) as caught:
        openai_client.chat.completions.create(
            model="nope", messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.body["code"] == "model_not_found"
