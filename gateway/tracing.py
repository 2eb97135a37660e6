"""OpenTelemetry traces, when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (the standard OTEL_*
variables configure the exporter). One span per call with a child span per stage (guard,
admission, provider, output), laid out from the stage timings the call measured anyway.
Attributes carry ids, names, counts and flags — never prompt text, output or PII."""

from __future__ import annotations

import os
import time

from opentelemetry import trace

_tracer = trace.get_tracer("switchboard.gateway")
STAGE_ORDER = ("guard", "admission", "provider", "output")


def configure_tracing() -> bool:
    """Install the OTLP exporter once per process if an endpoint is configured."""
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": os.environ.get("OTEL_SERVICE_NAME", "switchboard")}
        )
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return True


def record_call_spans(record, tenant_slug: str) -> None:
    """Emit the call's spans (a no-op unless a tracer provider is installed)."""
    if not _tracer_enabled():
        return
    total_ms = record.latency_ms.get("total", 0.0)
    end_ns = time.time_ns()
    start_ns = end_ns - int(total_ms * 1_000_000)
    attributes = {
        "switchboard.tenant": tenant_slug,
        "switchboard.call_id": record.call_id,
        "switchboard.request_id": record.request_id,
        "switchboard.feature": record.feature,
        "switchboard.endpoint": record.endpoint,
        "switchboard.mode": record.mode,
        "switchboard.alias": record.alias,
        "switchboard.deployment": record.deployment,
        "switchboard.status": record.status,
        "switchboard.input_tokens": record.input_tokens,
        "switchboard.output_tokens": record.output_tokens,
        "switchboard.cost_usd": float(record.cost),
        "switchboard.fallback": record.fallback_used,
        "switchboard.degraded": record.degraded,
        "switchboard.cache_hit": record.cache_hit,
        "switchboard.attempts": len(record.attempts),
        "switchboard.pii_entities": sum(record.pii_found.values()),
    }
    parent = _tracer.start_span("switchboard.call", start_time=start_ns, attributes=attributes)
    if record.error_type:
        parent.set_status(trace.Status(trace.StatusCode.ERROR, record.error_code))
    context = trace.set_span_in_context(parent)
    cursor = start_ns
    for stage in STAGE_ORDER:
        if stage not in record.latency_ms:
            continue
        duration = int(record.latency_ms[stage] * 1_000_000)
        span = _tracer.start_span(f"switchboard.{stage}", context=context, start_time=cursor)
        span.end(end_time=cursor + duration)
        cursor += duration
    parent.end(end_time=end_ns)


def _tracer_enabled() -> bool:
    return not isinstance(
        trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider
    )
