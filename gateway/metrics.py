"""Prometheus metrics: request counts and stage latencies per call, provider errors, circuit
states, cache/fallback/degraded counts, queue depth.

Label sets are bounded: endpoint, feature, status, stage, deployment and error type come from
configuration, not from callers; per-tenant labels can be switched off for large installations
(``SWITCHBOARD_METRICS_TENANT_LABELS=false``). With several worker processes, set
``PROMETHEUS_MULTIPROC_DIR`` (``make run`` does) so every process's samples are aggregated.
"""

from __future__ import annotations

import logging
import os

from django.conf import settings
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

logger = logging.getLogger(__name__)

STAGE_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
)

CALLS = Counter(
    "switchboard_calls_total",
    "AI calls by outcome",
    ["tenant", "feature", "endpoint", "status"],
)
STAGE_LATENCY = Histogram(
    "switchboard_stage_latency_seconds",
    "Latency of each stage of a call",
    ["stage", "endpoint"],
    buckets=STAGE_BUCKETS,
)
PROVIDER_ERRORS = Counter(
    "switchboard_provider_errors_total",
    "Failed provider attempts",
    ["deployment", "error_type"],
)
FLAGS = Counter(
    "switchboard_call_flags_total",
    "Calls served from cache, by fallback, or degraded",
    ["tenant", "feature", "flag"],
)
TOKENS = Counter(
    "switchboard_tokens_total",
    "Tokens billed by providers",
    ["tenant", "direction"],
)


def _tenant_label(tenant_slug: str) -> str:
    return tenant_slug if settings.SWITCHBOARD_METRICS_TENANT_LABELS else "-"


def observe_call(record, tenant_slug: str) -> None:
    """Count one finished call (called once per CallRecord)."""
    tenant = _tenant_label(tenant_slug)
    feature = record.feature if record.feature else "direct"
    CALLS.labels(tenant, feature, record.endpoint, record.status).inc()
    for stage, ms in record.latency_ms.items():
        STAGE_LATENCY.labels(stage, record.endpoint).observe(ms / 1000)
    for attempt in record.attempts:
        if attempt.outcome not in ("ok",):
            PROVIDER_ERRORS.labels(attempt.deployment, attempt.error_type or attempt.outcome).inc()
    for flag, on in (
        ("cache_hit", record.cache_hit),
        ("fallback", record.fallback_used),
        ("degraded", record.degraded),
    ):
        if on:
            FLAGS.labels(tenant, feature, flag).inc()
    if record.input_tokens:
        TOKENS.labels(tenant, "input").inc(record.input_tokens)
    if record.output_tokens:
        TOKENS.labels(tenant, "output").inc(record.output_tokens)


class _StateCollector:
    """Read at scrape time: circuit states and queue depth (shared state, not per process)."""

    def collect(self):
        from gateway.models import CircuitState

        circuit = GaugeMetricFamily(
            "switchboard_circuit_open",
            "1 when a deployment's circuit is open or half-open",
            labels=["deployment", "state"],
        )
        try:
            for deployment, state in CircuitState.objects.values_list("deployment", "state"):
                circuit.add_metric([deployment, state], 0 if state == "closed" else 1)
        except Exception:  # the database being down must not break the scrape
            logger.warning("circuit states unavailable for /metrics", exc_info=True)
        yield circuit
        depth = GaugeMetricFamily(
            "switchboard_queue_depth", "Messages waiting in the broker", labels=["queue"]
        )
        for queue, count in _queue_depths().items():
            depth.add_metric([queue], count)
        yield depth


def _queue_depths() -> dict[str, int]:
    if settings.EMBEDDED_BROKER:
        folder = settings.EMBEDDED_BROKER_DIR / "in"
        counts: dict[str, int] = {}
        try:
            for name in os.listdir(folder):
                # kombu's filesystem transport names files "<id>_<queue>.msg"... keep it coarse
                queue = name.rsplit(".", 1)[0].split("_", 1)[-1] if "_" in name else "default"
                counts[queue] = counts.get(queue, 0) + 1
        except OSError:
            pass
        return counts
    return {}


def render_metrics() -> tuple[bytes, str]:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    output = generate_latest(registry)
    output += generate_latest(_state_registry())
    return output, CONTENT_TYPE_LATEST


_STATE_REGISTRY: CollectorRegistry | None = None


def _state_registry() -> CollectorRegistry:
    global _STATE_REGISTRY
    if _STATE_REGISTRY is None:
        _STATE_REGISTRY = CollectorRegistry()
        _STATE_REGISTRY.register(_StateCollector())
    return _STATE_REGISTRY
