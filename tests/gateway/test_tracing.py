"""OpenTelemetry: a span per call and per stage, with no prompt text or PII in attributes."""

import json

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

pytestmark = pytest.mark.django_db(transaction=True)

SECRET_TEXT = "my card 4111 1111 1111 1111 and the word pineapple"


@pytest.fixture(scope="module")
def spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # once per process: OTel does not allow replacing it
    return exporter


def test_a_call_leaves_a_span_per_stage_without_text(spans, openai_client, routing):
    spans.clear()
    response = openai_client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": SECRET_TEXT}]
    )
    finished = [
        s
        for s in spans.get_finished_spans()
        if s.name == "switchboard.call" and s.attributes["switchboard.call_id"] == response.id
    ]
    assert finished, [s.name for s in spans.get_finished_spans()]
    call = finished[0]
    children = {
        s.name
        for s in spans.get_finished_spans()
        if s.parent and s.parent.span_id == call.context.span_id
    }
    assert {"switchboard.guard", "switchboard.admission", "switchboard.provider"} <= children
    assert call.attributes["switchboard.deployment"] == routing.primary
    assert call.attributes["switchboard.pii_entities"] == 1
    dumped = json.dumps(
        {k: str(v) for s in spans.get_finished_spans() for k, v in s.attributes.items()}
    )
    assert "pineapple" not in dumped and "4111" not in dumped
