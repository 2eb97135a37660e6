"""The gateway's entry point: the one path every AI call takes.

``execute_chat`` / ``stream_chat`` / ``execute_embeddings`` run the life of a call from DESIGN.md:
resolve the deployments an alias may use, guard the input (PII, injection), admit it against
rate limits and budgets, call the model through the fallback ladder, validate the output against
its contract, restore PII placeholders, and record exactly one usage record and one audit record,
whatever the outcome. Nothing else in the project calls a provider.

All database work runs through ``_in_tenant``: explicitly in the call's tenant schema, so it is
right in web requests, at the end of a stream (after the middleware has returned) and in Celery
workers alike.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from django_tenants.utils import schema_context

from cache.keys import CacheKeys, CacheScope, build_keys
from cache.services import Lookup, lookup_answer, similar_answer, store_answer
from gateway import errors
from gateway.guardrails.injection import DELIMITER_CLOSE, DELIMITER_OPEN, detect_injection
from gateway.guardrails.output import find_forbidden_terms, redact_output
from gateway.guardrails.pii import (
    PiiBlocked,
    PiiVault,
    apply_pii_policy,
    get_redactor,
    redact_for_storage,
    redact_messages,
)
from gateway.ladder import run_chat, run_embed
from gateway.ladder import stream_chat as ladder_stream
from gateway.metrics import observe_call
from gateway.recorder import persist, recorder
from gateway.records import AttemptRecord, CallContext, CallRecord, RetrievedChunk
from gateway.routing import Deployment, get_routing_table
from gateway.streaming import StreamRestorer
from gateway.tracing import record_call_spans
from gateway.types import ChatRequest, ChatResult

logger = logging.getLogger(__name__)


@dataclass
class CallOutcome:
    """What the caller gets back: the (restored) answer and the record of the call."""

    record: CallRecord
    content: str
    parsed: Any = None
    result: ChatResult | None = None
    degraded: bool = False
    cached: bool = False
    headers: dict[str, str] = field(default_factory=dict)


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


def _in_tenant(tenant, fn: Callable, *args, **kwargs):
    """Run ``fn`` in the tenant's schema on a worker thread of the process's pool.

    Every query of the gateway names its schema this way, so the result is the same in a web
    request, at the end of a stream and in a Celery worker. The thread's connection is returned
    to the pool after each use, as at the end of a request.
    """

    def run():
        close_old_connections()
        try:
            with schema_context(tenant.schema_name):
                return fn(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(run, thread_sensitive=False)()


# --- deployments --------------------------------------------------------------------------------


def resolve_deployments(tenant, alias: str, *, capability: str = "chat") -> list[Deployment]:
    """The ordered deployments this tenant may use for ``alias``; 404/403 when it may use none."""
    table = get_routing_table()
    plan = tenant.plan
    if plan is not None and plan.allowed_aliases and alias not in plan.allowed_aliases:
        raise errors.PermissionDenied(
            f"The model {alias!r} is not available on this tenant's plan.",
            code="model_not_allowed",
            param="model",
        )
    try:
        deployments = table.resolve(alias)
    except KeyError:
        raise errors.NotFound(
            f"The model {alias!r} does not exist.", code="model_not_found", param="model"
        ) from None
    deployments = [d for d in deployments if capability in d.supports]
    if tenant.allowed_providers:
        deployments = [d for d in deployments if d.provider_family in tenant.allowed_providers]
    if not deployments:
        raise errors.PermissionDenied(
            f"No deployment of {alias!r} may serve this tenant ({capability}).",
            code="model_not_allowed",
            param="model",
        )
    return deployments


def visible_aliases(tenant) -> list[str]:
    table = get_routing_table()
    aliases = table.aliases()
    plan = tenant.plan
    if plan is not None and plan.allowed_aliases:
        aliases = [a for a in aliases if a in plan.allowed_aliases]
    return aliases


# --- guards -------------------------------------------------------------------------------------


def _user_texts(messages: Sequence[dict]) -> list[str]:
    texts = []
    for message in messages:
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(p.get("text") or "" for p in content if isinstance(p, dict))
    return texts


def _without_our_delimiters(texts: list[str]) -> list[str]:
    """User texts without the delimiters the prompt renderer put around them: those are ours,
    not an escape attempt (wrap_user_input has already neutralised any inside the input)."""
    opening, closing = f"{DELIMITER_OPEN}\n", f"\n{DELIMITER_CLOSE}"
    return [
        t[len(opening) : -len(closing)] if t.startswith(opening) and t.endswith(closing) else t
        for t in texts
    ]


def _guard_input(
    ctx: CallContext, request: ChatRequest, record: CallRecord, refuse_injection: bool
) -> tuple[ChatRequest, PiiVault]:
    redactor = get_redactor()
    try:
        outbound, vault = apply_pii_policy(request.messages, ctx.tenant.pii_mode, redactor)
    except PiiBlocked as exc:
        record.input_messages = redact_messages(request.messages, redactor, PiiVault())
        record.pii_found = dict(getattr(exc, "found", {}) or {})
        raise errors.InvalidRequest(
            "The input contains personal data and this tenant's policy blocks it: "
            f"{', '.join(sorted(record.pii_found)) or 'PII'}.",
            code="pii_blocked",
            param="messages",
        ) from None
    record.pii_found = dict(vault.found)
    # What is stored is always redacted, whatever the policy let through to the provider.
    record.input_messages = (
        outbound
        if ctx.tenant.pii_mode == "redact"
        else redact_messages(request.messages, redactor, PiiVault())
    )
    verdict = detect_injection("\n".join(_without_our_delimiters(_user_texts(request.messages))))
    if verdict.suspected:
        record.injection_suspected = True
        record.flags.append("injection_suspected")
        if refuse_injection:
            raise errors.InvalidRequest(
                "The input looks like an attempt to override the instructions.",
                code="injection_suspected",
                param="input",
            )
    return replace(request, messages=outbound), vault


def _estimate_tokens(messages: Sequence[dict]) -> int:
    chars = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(len(p.get("text") or "") for p in content if isinstance(p, dict))
    return chars // 4 + 4 * len(messages) + 3


def _max_output(request: ChatRequest, deployments: Sequence[Deployment]) -> int:
    if request.max_tokens:
        return request.max_tokens
    return max(d.max_output_tokens for d in deployments)


# --- admission and recording --------------------------------------------------------------------


def _admit(ctx: CallContext, record: CallRecord, estimated_tokens: int, max_cost: Decimal):
    from usage.services import admit

    admission = admit(
        tenant=ctx.tenant,
        api_key_id=ctx.api_key_id,
        end_user=ctx.end_user,
        feature=ctx.feature,
        call_id=ctx.call_id,
        request_id=ctx.request_id,
        estimated_tokens=estimated_tokens,
        max_cost=max_cost,
    )
    record.reservation_id = admission.reservation_id
    return admission


def _on_worker(fn: Callable, *args):
    """Run ``fn`` on a pooled worker thread that keeps its database connection between calls.

    For statements that name their schema (the admission): no search_path to set, no
    connection to check out per call. A failure drops the connection for the next call.
    """

    def run():
        try:
            return fn(*args)
        except DatabaseError:
            connection.close()
            raise errors.SwitchboardError(
                "The service's database is unavailable; try again shortly.",
                status=503,
                code="database_unavailable",
            ) from None

    return sync_to_async(run, thread_sensitive=False)()


async def _record(ctx: CallContext, record: CallRecord, started: float) -> None:
    record.latency_ms["total"] = _ms(started)
    observe_call(record, ctx.tenant.slug)
    record_call_spans(record, ctx.tenant.slug)
    if (
        settings.SWITCHBOARD_DEFERRED_RECORDING
        and not ctx.record_inline
        and recorder.submit(ctx.tenant.schema_name, record)
    ):
        return
    try:
        await _in_tenant(ctx.tenant, persist, record)
    except Exception:
        # The reservation left by admission is swept into a "lost" usage and audit record, so a
        # failure here loses nothing; the caller still gets its answer.
        logger.exception("recording call failed", extra={"call_id": record.call_id})


def _apply_result(record: CallRecord, result: ChatResult, table) -> None:
    record.deployment = result.deployment
    record.provider = result.provider
    record.provider_model = result.provider_model or ""
    record.provider_request_id = result.provider_request_id or ""
    record.input_tokens = result.input_tokens
    record.output_tokens = result.output_tokens
    record.tokens_estimated = result.tokens_estimated
    record.cost = table.cost(result.deployment, result.input_tokens, result.output_tokens)


def _apply_attempts(record: CallRecord, attempts) -> None:
    record.attempts = [
        AttemptRecord(
            deployment=a.deployment,
            provider=getattr(a, "provider", ""),
            outcome=a.outcome,
            error_type=a.error_type or "",
            status=a.status,
            latency_ms=a.latency_ms,
            retry=getattr(a, "retry", 0),
        )
        for a in attempts
    ]


def _fail(record: CallRecord, exc: errors.SwitchboardError) -> None:
    record.status = "refused" if exc.status in (400, 403, 404, 413, 429) else "failed"
    record.error_type = exc.type
    record.error_code = exc.code
    record.error_message = redact_for_storage(exc.message)[:500]
    record.http_status = exc.status


# --- the answer cache ---------------------------------------------------------------------------


def _cacheable(record: CallRecord) -> bool:
    """Only requests without personal data read or write the cache: a stored answer then never
    holds anyone's PII, and serving it needs no other request's vault. Suspected injections
    are not worth an answer kept for others either."""
    return not record.pii_found and not record.injection_suspected


def _model_identity(alias: str, deployments: Sequence[Deployment]) -> list[str]:
    return [alias, *(f"{d.name}:{d.model}" for d in deployments)]


def _serve_cached(
    ctx: CallContext, record: CallRecord, lookup: Lookup, headers: dict[str, str]
) -> CallOutcome:
    """A cached answer as the call's outcome: recorded at zero cost, with the tokens the
    provider call would have used (none for the ladder's rung: the provider was tried)."""
    entry = lookup.entry
    record.cache_hit = True
    record.cache_entry_id = entry.id
    record.tokens_saved = 0 if lookup.layer == "similar" else entry.tokens
    record.raw_output = entry.content  # stored only for requests and answers without PII
    record.parsed_output = entry.parsed
    record.flags.extend(["cache_hit", f"cache_layer:{lookup.layer}", f"cache_entry:{entry.id}"])
    if find_forbidden_terms(entry.content, list(ctx.tenant.forbidden_terms or [])):
        record.flags.append("forbidden_term")
    headers["X-Switchboard-Cache"] = lookup.layer
    return CallOutcome(
        record=record, content=entry.content, parsed=entry.parsed, cached=True, headers=headers
    )


async def _store_answer(
    ctx: CallContext,
    record: CallRecord,
    scope: CacheScope,
    keys: CacheKeys,
    lookup: Lookup,
    result: ChatResult,
    parsed: Any,
) -> None:
    stage = time.perf_counter()
    try:
        await _in_tenant(
            ctx.tenant,
            store_answer,
            scope=scope,
            keys=keys,
            lookup=lookup,
            model=ctx.alias,
            content=result.content,
            parsed=parsed,
            deployment=result.deployment,
            provider_model=result.provider_model or "",
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            call_id=ctx.call_id,
        )
    except DatabaseError:
        # A cache that cannot be written is a slower cache; the caller still gets its answer.
        logger.exception("storing cached answer failed", extra={"call_id": ctx.call_id})
    record.latency_ms["cache"] = round(record.latency_ms.get("cache", 0.0) + _ms(stage), 3)


# --- chat ---------------------------------------------------------------------------------------


async def execute_chat(
    ctx: CallContext,
    request: ChatRequest,
    *,
    contract: Any = None,
    retrieved_chunks: Sequence[RetrievedChunk] = (),
    refuse_injection: bool = False,
    degraded_answer: Callable[[], Any] | None = None,
    postprocess: Callable[[Any], tuple[Any, list[str]]] | None = None,
    cache: CacheScope | None = None,
) -> CallOutcome:
    """Run one non-streaming chat call through the whole path and record it.

    ``contract`` (prompts.contracts.OutputContract) adds provider-native structured output, local
    validation with one corrective retry, and a 422 when nothing valid can be had.
    ``degraded_answer`` builds the non-AI answer (e.g. extractive) used when the ladder is
    exhausted and ``ctx.allow_degraded`` is set; by default ``ctx.degraded_text``.
    ``postprocess`` checks a valid parsed output against what only the caller knows (e.g.
    citations against the retrieved chunks) and returns it corrected, with flags for the record.
    ``cache`` (feature runs) looks the answer up after admission (exact, then semantic), serves
    a similar answer when every deployment failed, and stores a fresh answer.
    """
    started = time.perf_counter()
    record = CallRecord.start(ctx)
    record.retrieved_chunks = list(retrieved_chunks)
    table = get_routing_table()
    headers: dict[str, str] = {}
    keys: CacheKeys | None = None
    lookup = Lookup()
    try:
        stage = time.perf_counter()
        deployments = resolve_deployments(ctx.tenant, ctx.alias)
        outbound, vault = _guard_input(ctx, request, record, refuse_injection)
        record.latency_ms["guard"] = _ms(stage)

        stage = time.perf_counter()
        max_out = _max_output(request, deployments)
        estimated_in = _estimate_tokens(outbound.messages)
        max_cost = max(table.cost(d.name, estimated_in, max_out) for d in deployments)
        admission = await _on_worker(_admit, ctx, record, estimated_in + max_out, max_cost)
        headers.update(admission.headers)
        record.latency_ms["admission"] = _ms(stage)

        validate = None
        if contract is not None:
            response_format = contract.response_format()
            if response_format is not None:
                outbound = replace(outbound, response_format=response_format)

            def validate(result: ChatResult) -> str | None:
                return contract.validate(result.content)[1]

        if cache is not None and _cacheable(record):
            stage = time.perf_counter()
            keys = build_keys(
                tenant_schema=ctx.tenant.schema_name,
                scope=cache,
                request=outbound,
                model=_model_identity(ctx.alias, deployments),
            )
            lookup = await _in_tenant(
                ctx.tenant, lookup_answer, scope=cache, keys=keys, for_tenant=ctx.tenant
            )
            record.latency_ms["cache"] = _ms(stage)
            if lookup.entry is not None:
                return _serve_cached(ctx, record, lookup, headers)

        stage = time.perf_counter()
        try:
            ladder = await run_chat(
                outbound,
                deployments,
                deadline_s=settings.SWITCHBOARD_CALL_DEADLINE_SECONDS,
                validate=validate,
            )
        except (errors.UpstreamUnavailable, errors.OutputValidationFailed) as exc:
            record.latency_ms["provider"] = _ms(stage)
            _apply_attempts(record, getattr(exc, "attempts", []) or [])
            if keys is not None:
                similar = await _in_tenant(
                    ctx.tenant, similar_answer, scope=cache, keys=keys, lookup=lookup
                )
                if similar is not None:
                    record.fallback_used = True
                    record.error_type = exc.type
                    record.error_code = exc.code
                    record.flags.append("similar_answer")
                    return _serve_cached(ctx, record, similar, headers)
            if not ctx.allow_degraded:
                raise
            answer = degraded_answer() if degraded_answer else ctx.degraded_text
            record.degraded = True
            record.status = "degraded"
            record.fallback_used = True
            record.error_type = exc.type
            record.error_code = exc.code
            # An extractive answer quotes the tenant's documents: stored redacted, like outputs.
            record.raw_output = redact_for_storage(answer) if isinstance(answer, str) else ""
            record.parsed_output = None if isinstance(answer, str) else answer
            headers["X-Switchboard-Degraded"] = "true"
            return CallOutcome(
                record=record,
                content=answer if isinstance(answer, str) else "",
                parsed=None if isinstance(answer, str) else answer,
                degraded=True,
                headers=headers,
            )
        record.latency_ms["provider"] = _ms(stage)
        result = ladder.result
        _apply_result(record, result, table)
        _apply_attempts(record, ladder.attempts)
        record.fallback_used = ladder.fallback_used

        stage = time.perf_counter()
        parsed = contract.validate(result.content)[0] if contract is not None else None
        if postprocess is not None and parsed is not None:
            parsed, extra_flags = postprocess(parsed)
            record.flags.extend(extra_flags)
        content = vault.restore(result.content)
        parsed_restored = vault.restore_json(parsed) if parsed is not None else None
        # One scan of the answer serves both the stored (redacted) text and the new-PII check.
        redacted, leaked = redact_output(content, vault, get_redactor())
        record.raw_output = redacted
        record.parsed_output = parsed  # placeholders only: what the provider saw and said
        if leaked:
            record.flags.append("pii_in_output")
        forbidden = find_forbidden_terms(content, list(ctx.tenant.forbidden_terms or []))
        if forbidden:
            record.flags.append("forbidden_term")
        record.latency_ms["output"] = _ms(stage)
        if keys is not None and not leaked and result.finish_reason != "length":
            await _store_answer(ctx, record, cache, keys, lookup, result, parsed)
        headers["X-Switchboard-Deployment"] = result.deployment
        return CallOutcome(
            record=record,
            content=content,
            parsed=parsed_restored,
            result=result,
            headers=headers,
        )
    except errors.SwitchboardError as exc:
        _fail(record, exc)
        if isinstance(exc, errors.UpstreamUnavailable | errors.OutputValidationFailed):
            _apply_attempts(record, getattr(exc, "attempts", []) or [])
        raise
    finally:
        await _record(ctx, record, started)


async def stream_chat(
    ctx: CallContext,
    request: ChatRequest,
    *,
    contract: Any = None,
    retrieved_chunks: Sequence[RetrievedChunk] = (),
    refuse_injection: bool = False,
    degraded_answer: Callable[[], str] | None = None,
) -> tuple[dict[str, str], AsyncIterator[dict]]:
    """Admit a streaming call, then return (headers, events).

    Refusals (bad input, limits, unknown model) raise here, before any byte is sent, so the view
    answers them with a normal JSON error. Events: ``{"type": "delta", "content": str}`` as
    tokens arrive, then ``{"type": "done", "finish_reason", "usage", "deployment", "cost"}`` or,
    when the provider fails after the first token, ``{"type": "error", "error": {...}}``. When
    every deployment fails before the first token and the call allows it
    (``ctx.allow_degraded``), the degraded answer (``degraded_answer()`` or the feature's text)
    is sent as the stream instead, ending with ``done`` with ``"degraded": true``.
    """
    started = time.perf_counter()
    record = CallRecord.start(ctx)
    record.retrieved_chunks = list(retrieved_chunks)
    table = get_routing_table()
    headers: dict[str, str] = {}
    try:
        deployments = resolve_deployments(ctx.tenant, ctx.alias)
        outbound, vault = _guard_input(ctx, request, record, refuse_injection)
        max_out = _max_output(request, deployments)
        estimated_in = _estimate_tokens(outbound.messages)
        max_cost = max(table.cost(d.name, estimated_in, max_out) for d in deployments)
        stage = time.perf_counter()
        admission = await _on_worker(_admit, ctx, record, estimated_in + max_out, max_cost)
        headers.update(admission.headers)
        record.latency_ms["admission"] = _ms(stage)
    except errors.SwitchboardError as exc:
        _fail(record, exc)
        await _record(ctx, record, started)
        raise
    if contract is not None and contract.response_format() is not None:
        outbound = replace(outbound, response_format=contract.response_format())

    async def events() -> AsyncIterator[dict]:
        restorer = StreamRestorer(vault.restore)
        provider_started = time.perf_counter()
        raw_parts: list[str] = []
        try:
            async for event in ladder_stream(
                outbound,
                deployments,
                deadline_s=settings.SWITCHBOARD_CALL_DEADLINE_SECONDS,
            ):
                if event.kind == "delta":
                    if "ttft" not in record.latency_ms:
                        record.latency_ms["ttft"] = _ms(started)
                    raw_parts.append(event.text)
                    text = restorer.feed(event.text)
                    if text:
                        yield {"type": "delta", "content": text}
                elif event.kind == "final":
                    tail = restorer.flush()
                    if tail:
                        yield {"type": "delta", "content": tail}
                    result = event.result
                    _apply_result(record, result, table)
                    _apply_attempts(record, event.attempts)
                    record.fallback_used = event.fallback_used
                    record.latency_ms["provider"] = _ms(provider_started)
                    yield {
                        "type": "done",
                        "finish_reason": result.finish_reason,
                        "deployment": result.deployment,
                        "model": result.provider_model,
                        "usage": {
                            "prompt_tokens": result.input_tokens,
                            "completion_tokens": result.output_tokens,
                            "total_tokens": result.input_tokens + result.output_tokens,
                        },
                        "cost": format(record.cost, "f"),
                    }
        except errors.SwitchboardError as exc:
            _fail(record, exc)
            if isinstance(exc, errors.StreamInterrupted):
                record.status = "interrupted"
            _apply_attempts(record, getattr(exc, "attempts", []) or [])
            if not raw_parts and ctx.allow_degraded and isinstance(exc, errors.UpstreamUnavailable):
                # Nothing was sent yet: the caller gets the degraded answer, quietly worse.
                answer = degraded_answer() if degraded_answer else ctx.degraded_text
                record.degraded = True
                record.status = "degraded"
                record.fallback_used = True
                record.http_status = 200
                raw_parts.append(answer)
                yield {"type": "delta", "content": answer}
                yield {
                    "type": "done",
                    "finish_reason": "degraded",
                    "degraded": True,
                    "deployment": "",
                    "model": "",
                    "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
                    "cost": "0",
                }
                return
            yield {
                "type": "error",
                "error": {
                    "type": exc.type,
                    "code": exc.code,
                    "message": exc.message,
                    "param": None,
                },
            }
        finally:
            text = "".join(raw_parts)
            # (a degraded answer holds no placeholders; restoring it changes nothing)
            record.raw_output = redact_for_storage(vault.restore(text))
            if contract is not None and record.status == "ok":
                parsed, problem = contract.validate(text)
                record.parsed_output = parsed
                if problem:
                    record.flags.append("output_invalid")
            await _record(ctx, record, started)

    return headers, events()


# --- embeddings ---------------------------------------------------------------------------------


@dataclass
class EmbeddingsOutcome:
    record: CallRecord
    vectors: list[list[float]]
    model: str
    input_tokens: int
    headers: dict[str, str] = field(default_factory=dict)


async def execute_embeddings(
    ctx: CallContext, texts: list[str], *, dimensions: int | None = None
) -> EmbeddingsOutcome:
    """Embed texts through the embedding deployments of ``ctx.alias``, admitted and recorded."""
    started = time.perf_counter()
    record = CallRecord.start(ctx)
    table = get_routing_table()
    headers: dict[str, str] = {}
    try:
        deployments = resolve_deployments(ctx.tenant, ctx.alias, capability="embeddings")
        redactor = get_redactor()
        vault = PiiVault()
        if ctx.tenant.pii_mode == "block":
            found = [f for text in texts for f in redactor.find(text)]
            if found:
                raise errors.InvalidRequest(
                    "The input contains personal data and this tenant's policy blocks it.",
                    code="pii_blocked",
                    param="input",
                )
        outbound = (
            [redactor.redact(text, vault) for text in texts]
            if ctx.tenant.pii_mode == "redact"
            else list(texts)
        )
        record.pii_found = dict(vault.found)
        record.input_messages = [
            {"role": "user", "content": redact_for_storage(t)[:2000]} for t in texts[:20]
        ]
        estimated = sum(len(t) for t in outbound) // 4 + len(outbound)
        max_cost = max(table.cost(d.name, estimated, 0) for d in deployments)
        admission = await _on_worker(_admit, ctx, record, estimated, max_cost)
        headers.update(admission.headers)
        stage = time.perf_counter()
        ladder = await run_embed(
            outbound,
            deployments,
            deadline_s=settings.SWITCHBOARD_CALL_DEADLINE_SECONDS,
            dimensions=dimensions,
        )
        record.latency_ms["provider"] = _ms(stage)
        result = ladder.result
        _apply_attempts(record, ladder.attempts)
        record.fallback_used = ladder.fallback_used
        record.deployment = result.deployment
        record.provider = getattr(result, "provider", "")
        record.provider_model = result.model
        record.input_tokens = result.input_tokens
        record.cost = table.cost(result.deployment, result.input_tokens, 0)
        headers["X-Switchboard-Deployment"] = result.deployment
        return EmbeddingsOutcome(
            record=record,
            vectors=result.vectors,
            model=result.model,
            input_tokens=result.input_tokens,
            headers=headers,
        )
    except errors.SwitchboardError as exc:
        _fail(record, exc)
        _apply_attempts(record, getattr(exc, "attempts", []) or [])
        raise
    finally:
        await _record(ctx, record, started)
