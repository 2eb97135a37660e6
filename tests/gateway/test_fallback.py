"""The resilience ladder through the real SDKs and the fake providers."""

import time
from decimal import Decimal

import openai
import pytest

from tests.fixtures_gateway import wait_for
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)

ASK = [{"role": "user", "content": "Where is my invoice?"}]


def _usage(tenant, call_id):
    def find():
        with tenant.context():
            return UsageRecord.objects.filter(call_id=call_id).first()

    return wait_for(find)


def test_falls_back_to_second_provider_on_500s(
    openai_client, simulator, simulator_b, routing, tenant_a
):
    simulator.set_fault("status", status=500)
    response = openai_client.chat.completions.create(model="chat", messages=ASK)
    assert response.model_extra["switchboard"]["deployment"] == routing.secondary
    assert response.model_extra["switchboard"]["fallback"] is True
    assert simulator.request_count("/v1/chat/completions") == 2  # one try plus one retry
    assert simulator_b.request_count("/v1/messages") == 1
    record = _usage(tenant_a, response.id)
    assert record.fallback_used and record.attempts == 3
    # the second provider's prices apply, exactly
    expected = (
        Decimal("3.00") * record.input_tokens + Decimal("15.00") * record.output_tokens
    ) / Decimal(1_000_000)
    assert record.cost == expected.quantize(Decimal("0.00000001"))


def test_falls_back_when_primary_hangs_past_its_timeout(openai_client, simulator, routing):
    simulator.set_fault("hang", seconds=30)
    started = time.monotonic()
    response = openai_client.chat.completions.create(model="chat", messages=ASK)
    elapsed = time.monotonic() - started
    assert response.model_extra["switchboard"]["deployment"] == routing.secondary
    assert elapsed < 6  # two 1.5 s attempts, then the second provider


def test_falls_back_when_primary_is_down(openai_client, simulator, routing):
    simulator.set_fault("down")
    response = openai_client.chat.completions.create(model="chat", messages=ASK)
    assert response.model_extra["switchboard"]["deployment"] == routing.secondary


def test_malformed_provider_answer_falls_back(openai_client, simulator, routing):
    simulator.set_fault("malformed")
    response = openai_client.chat.completions.create(model="chat", messages=ASK)
    assert response.model_extra["switchboard"]["deployment"] == routing.secondary


def test_retry_after_is_respected(openai_client, simulator, routing):
    simulator.set_fault("status", status=429, retry_after=1, count=1)
    started = time.monotonic()
    response = openai_client.chat.completions.create(model="solo", messages=ASK)
    elapsed = time.monotonic() - started
    assert response.model_extra["switchboard"]["deployment"] == routing.primary
    assert simulator.request_count("/v1/chat/completions") == 2
    assert elapsed >= 1.0


def test_retry_after_beyond_the_deadline_moves_on(openai_client, simulator, routing, settings):
    settings.SWITCHBOARD_CALL_DEADLINE_SECONDS = 4
    simulator.set_fault("status", status=429, retry_after=30)
    started = time.monotonic()
    response = openai_client.chat.completions.create(model="chat", messages=ASK)
    assert time.monotonic() - started < 3
    assert response.model_extra["switchboard"]["deployment"] == routing.secondary
    assert simulator.request_count("/v1/chat/completions") == 1


def test_other_4xx_is_not_retried(openai_client, simulator, routing):
    simulator.set_fault("status", status=400)
    response = openai_client.chat.completions.create(model="chat", messages=ASK)
    assert simulator.request_count("/v1/chat/completions") == 1
    assert response.model_extra["switchboard"]["deployment"] == routing.secondary


def test_everything_down_is_503_upstream_unavailable(
    openai_client, simulator, simulator_b, routing, tenant_a
):
    from django.utils import timezone

    simulator.set_fault("status", status=503)
    simulator_b.set_fault("down")
    started = timezone.now()  # other tests' committed records of this tenant are not this one
    with pytest.raises(openai.InternalServerError) as caught:
        openai_client.chat.completions.create(model="chat", messages=ASK)
    assert caught.value.status_code == 503
    assert caught.value.body["code"] == "upstream_unavailable"
    with tenant_a.context():
        record = wait_for(
            lambda: UsageRecord.objects.filter(
                status="failed", http_status=503, created_at__gte=started
            ).first()
        )
    assert record is not None and record.attempts >= 3


def test_circuit_opens_then_closes_after_a_successful_probe(openai_client, simulator, routing):
    simulator.set_fault("status", status=500)
    for _ in range(2):  # 2 calls x 2 attempts = 4 failures > threshold 3
        openai_client.chat.completions.create(model="chat", messages=ASK)
    seen = simulator.request_count("/v1/chat/completions")
    for _ in range(3):
        response = openai_client.chat.completions.create(model="chat", messages=ASK)
        assert response.model_extra["switchboard"]["deployment"] == routing.secondary
    assert simulator.request_count("/v1/chat/completions") == seen  # skipped: circuit open
    simulator.clear_faults()
    time.sleep(0.6)  # the cool-down
    response = openai_client.chat.completions.create(model="chat", messages=ASK)
    assert response.model_extra["switchboard"]["deployment"] == routing.primary  # the probe
    response = openai_client.chat.completions.create(model="chat", messages=ASK)
    assert response.model_extra["switchboard"]["deployment"] == routing.primary  # closed


def test_stream_falls_back_before_the_first_token(openai_client, simulator, simulator_b, routing):
    simulator.set_fault("status", status=500)
    stream = openai_client.chat.completions.create(model="chat", messages=ASK, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text.startswith("Simulated answer: Where is my invoice")
    assert simulator.request_count("/v1/chat/completions") == 2
    assert simulator_b.request_count("/v1/messages") == 1


def test_provider_failing_mid_stream_ends_with_an_error_event(
    openai_client, simulator, routing, tenant_a
):
    from django.utils import timezone

    simulator.set_fault("midstream_failure", after_chunks=3)
    started = timezone.now()
    received = []
    stream = openai_client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "a b c d e f g h"}], stream=True
    )
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    assert len(received) == 3
    assert "middle of the answer" in str(caught.value)
    with tenant_a.context():
        record = wait_for(
            lambda: UsageRecord.objects.filter(
                status="interrupted", endpoint="chat", created_at__gte=started
            ).first()
        )
    assert record is not None and record.feature == "direct"
