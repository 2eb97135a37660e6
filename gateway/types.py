"""The gateway's one internal request/response shape; provider adapters translate to and from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class ChatRequest:
    """A chat call in OpenAI's vocabulary (messages with roles system/user/assistant/tool)."""

    messages: list[dict]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: str | list[str] | None = None
    response_format: dict | None = None  # {"type": "json_schema", "json_schema": {...}} …
    tools: list[dict] | None = None
    tool_choice: str | dict | None = None
    user: str | None = None
    seed: int | None = None
    stream_include_usage: bool = False


@dataclass
class ChatResult:
    content: str
    finish_reason: str  # OpenAI vocabulary: stop, length, tool_calls, content_filter
    input_tokens: int
    output_tokens: int
    deployment: str
    provider: str
    tokens_estimated: bool = False
    provider_request_id: str = ""
    provider_model: str = ""
    tool_calls: list[dict] | None = None


@dataclass
class StreamEvent:
    """``delta`` carries text as it arrives; ``final`` closes a successful stream."""

    kind: Literal["delta", "final"]
    text: str = ""
    result: ChatResult | None = None
    attempts: list[Attempt] = field(default_factory=list)
    fallback_used: bool = False


@dataclass
class EmbedResult:
    vectors: list[list[float]]
    input_tokens: int
    model: str
    deployment: str
    provider: str
    tokens_estimated: bool = False


@dataclass
class Attempt:
    """One try at one deployment, as the ladder saw it."""

    deployment: str
    provider: str
    outcome: str  # ok | error | skipped_open_circuit | invalid_output
    error_type: str = ""
    status: int | None = None
    latency_ms: float = 0.0
    retry: int = 0


def estimate_tokens(text: str) -> int:
    """Used only when a provider reports no usage; records mark such counts as estimated."""
    return max(1, (len(text) + 3) // 4) if text else 0


Json = dict[str, Any]
