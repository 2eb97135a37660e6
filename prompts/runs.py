"""Feature runs: resolve the feature's serving version (A/B sticky per end user), retrieve
context, render, and call the gateway's entry point, which admits, guards, calls the ladder,
validates the contract and records the run."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from django_tenants.utils import schema_context

from cache.keys import CacheScope
from gateway import service
from gateway.errors import NotFound
from gateway.records import CallContext, RetrievedChunk
from gateway.types import ChatRequest
from prompts.contracts import OutputContract
from prompts.models import Feature, PromptVersion
from prompts.rendering import ContextChunk, render_messages, user_turn
from prompts.services import Actor, choose_version


@dataclass
class PreparedRun:
    feature: Feature
    version: PromptVersion
    variant: str
    contract: OutputContract
    request: ChatRequest
    chunks: list[RetrievedChunk]
    context: list[ContextChunk]
    cache: CacheScope | None = None
    conversation: Any = None  # conversations.models.Conversation the run continues
    extractive_citations: list[str] = field(default_factory=list)  # the degraded answer's
    user_text: str = ""  # the run's user turn, stored in the conversation after the answer


def retrieve_context(
    tenant, feature: Feature, data: dict, access_tags: list[str] | None
) -> tuple[list[ContextChunk], list[RetrievedChunk]]:
    """Chunks for a retrieval feature (the retrieval app's hybrid search, when installed)."""
    try:
        from retrieval.services import search_for_feature
    except ImportError:
        return [], []
    return search_for_feature(tenant=tenant, feature=feature, data=data, access_tags=access_tags)


def cache_scope(
    *,
    feature: Feature,
    version: PromptVersion,
    request: ChatRequest,
    data: Any,
    end_user: str,
    chunks: list[RetrievedChunk],
    conversation_id: str | None,
    options: dict | None,
) -> CacheScope | None:
    """The run's answer-cache scope under the feature's policy, or None when it does not cache.

    The caller's ``options`` (``max_distance``, ``bypass``) may only tighten the policy: a
    looser distance is clamped to the feature's.
    """
    options = options or {}
    if not feature.caches(version.params or {}, request.tools):
        return None
    if feature.cache_personalised and not end_user:
        return None  # an anonymous caller of a personalised feature: no one to scope it to
    max_distance = feature.cache_max_distance
    fallback = feature.cache_fallback_max_distance
    if options.get("max_distance") is not None:
        max_distance = min(max_distance, float(options["max_distance"]))
        fallback = None if fallback is None else min(fallback, float(options["max_distance"]))
    values = data if isinstance(data, dict) else {}
    query = "\n".join(
        v if isinstance(v, str) else json.dumps(v, sort_keys=True, ensure_ascii=False)
        for _, v in sorted(values.items())
    )
    return CacheScope(
        feature=feature.slug,
        prompt_version_id=version.id,
        generation=feature.cache_generation,
        ttl_seconds=feature.cache_ttl_seconds,
        max_distance=max_distance,
        fallback_max_distance=fallback,
        end_user=end_user if feature.cache_personalised else "",
        conversation_id=conversation_id or None,
        chunk_ids=tuple(sorted(c.chunk_id for c in chunks)),
        query_text=query,
        read=not options.get("bypass", False),
    )


def prepare_run(
    *,
    tenant,
    slug: str,
    data: Any,
    end_user: str,
    salt: str = "",
    version: PromptVersion | None = None,
    variant: str = "console",
    access_tags: list[str] | None = None,
    conversation_id: str | None = None,
    cache_options: dict | None = None,
    use_cache: bool = True,
) -> PreparedRun:
    """Everything before the model call (runs in the tenant's schema).

    ``conversation_id`` continues a conversation of ``end_user``'s (404 for anyone else's): its
    summary and recent turns go in after the instructions and few-shot examples, and the
    cache is scoped to it. ``cache_options`` is the caller's ``cache`` object;
    ``use_cache=False`` leaves the cache out entirely (console test runs and evaluations want
    the model's answer, not a stored one)."""
    feature = Feature.objects.filter(slug=slug).first()
    if feature is None:
        raise NotFound(f"No feature {slug!r}.", param="slug", code="feature_not_found")
    conversation = None
    if conversation_id:
        from conversations.services import conversation_for_run

        conversation = conversation_for_run(conversation_id=conversation_id, end_user=end_user)
    if version is None:
        choice = choose_version(feature, end_user, salt)
        version, variant = choice.version, choice.variant
    context, chunks = ([], [])
    if feature.uses_retrieval:
        context, chunks = retrieve_context(
            tenant, feature, data if isinstance(data, dict) else {}, access_tags
        )
    messages = render_messages(version, data, context=context if feature.uses_retrieval else None)
    user_text = ""
    if conversation is not None:
        from conversations.services import history_messages, with_history

        history = history_messages(conversation=conversation)
        messages = with_history(messages, history, position=1 + 2 * len(version.few_shot or []))
        user_text = user_turn(version, data)
    params = version.params or {}
    contract = OutputContract.from_dict(version.contract, feature.slug)
    request = ChatRequest(
        messages=messages,
        temperature=params.get("temperature"),
        top_p=params.get("top_p"),
        max_tokens=params.get("max_tokens"),
        user=end_user or None,
    )
    cache = None
    if use_cache:
        cache = cache_scope(
            feature=feature,
            version=version,
            request=request,
            data=data,
            end_user=end_user,
            chunks=chunks,
            conversation_id=conversation_id,
            options=cache_options,
        )
    return PreparedRun(
        feature,
        version,
        variant,
        contract,
        request,
        chunks,
        context,
        cache,
        conversation=conversation,
        user_text=user_text,
    )


def _answer_text(outcome: service.CallOutcome) -> str:
    if outcome.parsed is not None and not isinstance(outcome.parsed, str):
        return json.dumps(outcome.parsed, ensure_ascii=False)
    return outcome.content or ""


def record_in_conversation(run: PreparedRun, outcome: service.CallOutcome, tenant) -> None:
    """After a run in a conversation: its input and answer become the next two turns. A
    degraded answer is not the model's and is not remembered (the next run asks again)."""
    if run.conversation is None or outcome.degraded:
        return
    _remember(run, tenant, _answer_text(outcome), outcome.record.call_id)


def _remember(run: PreparedRun, tenant, answer_text: str, run_id: str) -> None:
    from conversations.services import record_exchange

    with schema_context(tenant.schema_name):
        record_exchange(
            conversation=run.conversation,
            user_text=run.user_text,
            answer_text=answer_text,
            run_id=run_id,
        )


def run_payload(run: PreparedRun, outcome: service.CallOutcome) -> dict:
    """The run as the API answers it (sync runs, and async jobs' results)."""
    record = outcome.record
    output = outcome.parsed if outcome.parsed is not None else outcome.content
    return _payload(
        run,
        call_id=record.call_id,
        output=output,
        deployment=record.deployment,
        input_tokens=record.input_tokens,
        output_tokens=record.output_tokens,
        cost=format(record.cost, "f"),
        cached=outcome.cached,
        degraded=outcome.degraded,
        flags=list(record.flags),
    )


def _payload(
    run: PreparedRun,
    *,
    call_id: str,
    output: Any,
    deployment: str,
    input_tokens: int,
    output_tokens: int,
    cost: str,
    cached: bool,
    degraded: bool,
    flags: list[str],
) -> dict:
    citations = output.get("citations", []) if isinstance(output, dict) else []
    if degraded and not citations:
        citations = run.extractive_citations  # the passages the extractive answer quotes
    return {
        "id": call_id,
        "feature": run.feature.slug,
        "output": output,
        "prompt_version": run.version.label,
        "variant": run.variant,
        "model": run.feature.model_alias,
        "deployment": deployment,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens, "cost": cost},
        "citations": [str(c) for c in citations],
        "cached": cached,
        "degraded": degraded,
        "flags": flags,
    }


def _context(
    run: PreparedRun,
    *,
    tenant,
    request_id: str,
    key,
    end_user: str,
    mode: str,
    staff: Actor | None = None,
    call_id: str | None = None,
) -> CallContext:
    extra = {"call_id": call_id, "record_inline": True} if call_id else {}
    return CallContext(
        **extra,
        tenant=tenant,
        request_id=request_id,
        api_key_id=key.id if key else None,
        api_key_prefix=key.prefix if key else "",
        end_user=end_user,
        feature=run.feature.slug,
        mode=mode,
        endpoint="feature_run",
        alias=run.feature.model_alias,
        prompt_version_id=run.version.id,
        prompt_version_label=run.version.label,
        variant=run.variant,
        allow_degraded=run.feature.allow_degraded,
        degraded_text=run.feature.degraded_text,
        staff_user_id=staff.id if staff else None,
        staff_username=staff.name if staff else "",
    )


def _extractive_answer(run: PreparedRun) -> str:
    """The non-AI rung for retrieval features: the best passages with their sources."""
    if not run.context:
        return run.feature.degraded_text
    lines = [run.feature.degraded_text, ""]
    run.extractive_citations = [chunk.id for chunk in run.context[:3]]
    for chunk in run.context[:3]:
        lines.append(f"[{chunk.id}] {chunk.title}: {chunk.text[:400]}")
    return "\n".join(lines)


def drop_fabricated_citations(parsed: Any, run: PreparedRun) -> tuple[Any, list[str]]:
    """A citation must name a chunk this run retrieved; others are removed and flagged."""
    from gateway.guardrails.output import check_citations

    if not isinstance(parsed, dict) or not isinstance(parsed.get("citations"), list):
        return parsed, []
    kept, removed = check_citations(
        [str(c) for c in parsed["citations"]], {c.id for c in run.context}
    )
    if not removed:
        return parsed, []
    return {**parsed, "citations": kept}, ["citation_removed"]


async def execute_run(
    *,
    tenant,
    slug: str,
    data: Any,
    end_user: str,
    request_id: str,
    key=None,
    mode: str = "sync",
    staff: Actor | None = None,
    version: PromptVersion | None = None,
    variant: str = "console",
    access_tags: list[str] | None = None,
    call_id: str | None = None,
    conversation_id: str | None = None,
    cache_options: dict | None = None,
) -> tuple[PreparedRun, service.CallOutcome]:
    """One feature run through the gateway's entry point. ``version`` pins a version (console
    test runs and evaluations, recorded under ``variant``) instead of the serving choice.
    ``call_id`` fixes the run id (async jobs: every attempt is the same call, charged once).
    ``conversation_id`` and ``cache_options`` scope and tighten the answer cache; console runs
    (``mode="console"``) never use it."""
    run = await _prepare(
        tenant=tenant,
        slug=slug,
        data=data,
        end_user=end_user,
        salt=request_id,
        version=version,
        variant=variant,
        access_tags=access_tags,
        conversation_id=conversation_id,
        cache_options=cache_options,
        use_cache=mode != "console",
    )
    outcome = await _execute_prepared(
        run,
        tenant=tenant,
        request_id=request_id,
        key=key,
        end_user=end_user,
        mode=mode,
        staff=staff,
        call_id=call_id,
    )
    return run, outcome


async def _prepare(*, tenant, **kwargs) -> PreparedRun:
    def prepare():
        with schema_context(tenant.schema_name):
            return prepare_run(tenant=tenant, **kwargs)

    return await sync_to_async(prepare)()


async def _execute_prepared(run: PreparedRun, *, tenant, **context) -> service.CallOutcome:
    ctx = _context(run, tenant=tenant, **context)
    outcome = await service.execute_chat(
        ctx,
        run.request,
        contract=run.contract if run.contract.kind != "text" else None,
        retrieved_chunks=run.chunks,
        refuse_injection=run.feature.refuse_injection,
        degraded_answer=_degraded_answer(run),
        postprocess=lambda parsed: drop_fabricated_citations(parsed, run),
        cache=run.cache,
    )
    await sync_to_async(record_in_conversation)(run, outcome, tenant)
    return outcome


def _degraded_answer(run: PreparedRun):
    return (lambda: _extractive_answer(run)) if run.feature.uses_retrieval else None


async def stream_run(
    *,
    tenant,
    slug: str,
    data: Any,
    end_user: str,
    request_id: str,
    key=None,
    access_tags: list[str] | None = None,
    conversation_id: str | None = None,
):
    """A streamed run. In a conversation, the streamed answer is remembered once the stream
    completes (``done``); an interrupted stream leaves the conversation as it was."""
    run = await _prepare(
        tenant=tenant,
        slug=slug,
        data=data,
        end_user=end_user,
        salt=request_id,
        access_tags=access_tags,
        conversation_id=conversation_id,
        # Streaming runs skip the answer cache: a stored answer is not a stream.
        use_cache=False,
    )
    ctx, headers, events = await _stream_prepared(
        run, tenant=tenant, request_id=request_id, key=key, end_user=end_user, mode="stream"
    )
    return run, ctx, headers, events


async def _stream_prepared(run: PreparedRun, *, tenant, **context):
    ctx = _context(run, tenant=tenant, **context)
    headers, events = await service.stream_chat(
        ctx,
        run.request,
        contract=run.contract if run.contract.kind != "text" else None,
        retrieved_chunks=run.chunks,
        refuse_injection=run.feature.refuse_injection,
        degraded_answer=_degraded_answer(run),
    )
    if run.conversation is None:
        return ctx, headers, events

    async def remembered():
        parts: list[str] = []
        async for event in events:
            if event["type"] == "delta":
                parts.append(event["content"])
            elif event["type"] == "done" and not event.get("degraded"):
                await sync_to_async(_remember)(run, tenant, "".join(parts), ctx.call_id)
            yield event

    return ctx, headers, remembered()


async def execute_run_streaming(
    *,
    tenant,
    slug: str,
    data: Any,
    end_user: str,
    request_id: str,
    key,
    call_id: str,
    on_delta: Callable[[str], Awaitable[None]],
    access_tags: list[str] | None = None,
    conversation_id: str | None = None,
    cache_options: dict | None = None,
) -> tuple[PreparedRun, dict]:
    """An async job's run, with its tokens passed to ``on_delta`` as they arrive: for a
    free-text feature the answer cache cannot serve. A structured output is validated before
    anything of it reaches anyone, and a cacheable run may be served from the cache, so those
    run whole (the same path as a sync run) and ``on_delta`` is not called. Returns the run and
    the run's payload (as ``run_payload`` builds it). Raises ``SwitchboardError``
    for refusals and for a stream that broke after its first token."""
    from gateway.errors import StreamInterrupted, UpstreamUnavailable

    run = await _prepare(
        tenant=tenant,
        slug=slug,
        data=data,
        end_user=end_user,
        salt=request_id,
        access_tags=access_tags,
        conversation_id=conversation_id,
        cache_options=cache_options,
    )
    context = dict(request_id=request_id, key=key, end_user=end_user, mode="async")
    if run.contract.kind != "text" or run.cache is not None:
        outcome = await _execute_prepared(run, tenant=tenant, call_id=call_id, **context)
        return run, run_payload(run, outcome)
    ctx, _, events = await _stream_prepared(run, tenant=tenant, call_id=call_id, **context)
    parts: list[str] = []
    async for event in events:
        if event["type"] == "delta":
            parts.append(event["content"])
            await on_delta(event["content"])
        elif event["type"] == "error":
            error = event["error"]
            kind = StreamInterrupted if parts else UpstreamUnavailable
            raise kind(error["message"], code=error["code"])
        elif event["type"] == "done":
            usage = event["usage"]
            return run, _payload(
                run,
                call_id=ctx.call_id,
                output="".join(parts),
                deployment=event["deployment"],
                input_tokens=usage["prompt_tokens"],
                output_tokens=usage["completion_tokens"],
                cost=event["cost"],
                cached=False,
                degraded=bool(event.get("degraded")),
                flags=[],
            )
    raise UpstreamUnavailable("The stream ended without an answer.")
