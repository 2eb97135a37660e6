"""What a cache entry is keyed by, and the two keys computed from it.

``CacheScope`` is built by the feature run (prompts.runs) from the feature's policy and the run;
the gateway adds what only it knows (the deployments behind the alias, the outbound request) and
computes the keys. Both keys are SHA-256 over a canonical JSON document, so the same request
always gives the same key and any difference in scope gives another.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.types import ChatRequest


@dataclass(frozen=True)
class CacheScope:
    """A feature run's cache scope and policy (thresholds already include the caller's)."""

    feature: str
    prompt_version_id: int
    generation: int
    ttl_seconds: int
    max_distance: float
    fallback_max_distance: float | None  # the ladder's similar-answer rung; None: off
    end_user: str = ""  # set only for personalised features
    conversation_id: str | None = None
    chunk_ids: tuple[int, ...] = field(default_factory=tuple)
    # What the semantic layer embeds: the values of the run's input, not the rendered template
    # (whose fixed wording would make every two inputs look alike).
    query_text: str = ""
    read: bool = True  # False: the caller bypasses (no lookup; a fresh answer is stored)


@dataclass(frozen=True)
class CacheKeys:
    exact: str
    semantic: str
    context_fingerprint: str


def _digest(document: Any) -> str:
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _params(request: ChatRequest) -> dict:
    return {
        "temperature": request.temperature,
        "top_p": request.top_p,
        "max_tokens": request.max_tokens,
        "stop": request.stop,
        "seed": request.seed,
        "response_format": request.response_format,
        "tools": request.tools,
        "tool_choice": request.tool_choice,
    }


def _input_index(messages: Sequence[dict]) -> int:
    """The user's input is the last user message (few-shot, history and context come before)."""
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].get("role") == "user":
            return index
    return len(messages)


def build_keys(
    *, tenant_schema: str, scope: CacheScope, request: ChatRequest, model: Sequence[Any]
) -> CacheKeys:
    """The exact and semantic keys of ``request`` (the outbound request) in ``scope``.

    ``model`` identifies what answers: the alias and the deployments (name, provider model) it
    resolves to now, so a change of model behind an alias never serves the old model's answers.
    The tenant's schema is in the keys too: isolation is structural (the entry lives in that
    schema), and a key copied elsewhere still matches nothing.
    """
    messages = list(request.messages)
    at = _input_index(messages)
    # Everything the answer depends on except the user's input: system prompt, few-shot
    # examples, conversation history, retrieved context.
    context = [m for i, m in enumerate(messages) if i != at]
    shared = {
        "tenant": tenant_schema,
        "feature": scope.feature,
        "prompt_version": scope.prompt_version_id,
        "generation": scope.generation,
        "model": list(model),
        "params": _params(request),
        "end_user": scope.end_user,
        "conversation": scope.conversation_id,
    }
    fingerprint = _digest({"context": context, "chunks": list(scope.chunk_ids)})
    return CacheKeys(
        exact=_digest({**shared, "messages": messages, "chunks": list(scope.chunk_ids)}),
        semantic=_digest({**shared, "context": fingerprint}),
        context_fingerprint=fingerprint,
    )
