"""What the gateway knows about one AI call: who asked, in what context, and what happened.

The gateway builds exactly one :class:`CallRecord` per call, whatever its outcome, and hands it to
the usage recorder (``usage.services.record_usage``) and the audit recorder
(``audit.services.record_audit``). Text in a CallRecord is already PII-redacted: the raw values
exist only in the per-call vault and in what goes back to the caller.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from django.utils import timezone

Mode = Literal["sync", "stream", "async", "console"]
Endpoint = Literal["chat", "embeddings", "feature_run"]
Status = Literal["ok", "degraded", "refused", "failed", "interrupted", "lost"]


def new_call_id() -> str:
    return f"run_{uuid.uuid4().hex}"


@dataclass
class CallContext:
    """Who is calling and for what; built by the view (or task) before the call starts."""

    tenant: Any  # tenants.models.Tenant (public schema row)
    request_id: str
    api_key_id: int | None = None
    api_key_prefix: str = ""
    end_user: str = ""
    feature: str = "direct"  # feature slug, or "direct" for the OpenAI-compatible API
    mode: Mode = "sync"
    endpoint: Endpoint = "chat"
    alias: str = ""
    staff_user_id: int | None = None  # console test runs
    staff_username: str = ""
    call_id: str = field(default_factory=new_call_id)
    # Set by feature runs (prompts app); empty for direct calls.
    prompt_version_id: int | None = None
    prompt_version_label: str = ""
    variant: str = ""
    allow_degraded: bool = False
    degraded_text: str = ""
    # Write the records before returning (workers: no latency to save, and the job's outcome
    # must not be reported before its records exist).
    record_inline: bool = False


@dataclass
class AttemptRecord:
    deployment: str
    provider: str
    outcome: str  # "ok", "error", "skipped_open_circuit", "invalid_output"
    error_type: str = ""
    status: int | None = None
    latency_ms: float = 0.0
    retry: int = 0


@dataclass
class RetrievedChunk:
    document_id: int
    chunk_id: int
    score: float
    title: str = ""


@dataclass
class CallRecord:
    """Everything recorded about one call (usage and audit both read from it)."""

    call_id: str
    request_id: str
    created_at: datetime
    api_key_id: int | None
    api_key_prefix: str
    end_user: str
    feature: str
    mode: str
    endpoint: str
    alias: str
    status: Status = "ok"
    deployment: str = ""
    provider: str = ""
    provider_model: str = ""
    provider_request_id: str = ""
    prompt_version_id: int | None = None
    prompt_version_label: str = ""
    variant: str = ""
    retrieved_chunks: list[RetrievedChunk] = field(default_factory=list)
    input_messages: list[dict] = field(default_factory=list)  # redacted
    raw_output: str = ""  # redacted
    parsed_output: Any = None  # redacted
    input_tokens: int = 0
    output_tokens: int = 0
    tokens_estimated: bool = False
    cost: Decimal = Decimal("0")
    tokens_saved: int = 0  # cache hits: what the provider call would have used
    latency_ms: dict[str, float] = field(default_factory=dict)  # stage -> ms; "total", "ttft"
    attempts: list[AttemptRecord] = field(default_factory=list)
    cache_hit: bool = False
    cache_entry_id: int | None = None
    fallback_used: bool = False
    degraded: bool = False
    injection_suspected: bool = False
    pii_found: dict[str, int] = field(default_factory=dict)  # entity type -> count
    flags: list[str] = field(default_factory=list)  # e.g. "citation_removed", "forbidden_term"
    error_type: str = ""
    error_code: str = ""
    error_message: str = ""  # never raw PII
    http_status: int = 200
    reservation_id: int | None = None
    staff_user_id: int | None = None
    staff_username: str = ""

    @classmethod
    def start(cls, ctx: CallContext) -> CallRecord:
        return cls(
            call_id=ctx.call_id,
            request_id=ctx.request_id,
            created_at=timezone.now(),
            api_key_id=ctx.api_key_id,
            api_key_prefix=ctx.api_key_prefix,
            end_user=ctx.end_user,
            feature=ctx.feature,
            mode=ctx.mode,
            endpoint=ctx.endpoint,
            alias=ctx.alias,
            prompt_version_id=ctx.prompt_version_id,
            prompt_version_label=ctx.prompt_version_label,
            variant=ctx.variant,
            staff_user_id=ctx.staff_user_id,
            staff_username=ctx.staff_username,
        )
