"""The fallback ladder: each deployment of an alias in order, each with its timeout, retries and
circuit breaker; an output contract's one corrective retry; the attempts, for the records.

The last rungs (a cached answer, a non-AI answer) belong to the caller (``gateway.service``),
which knows the feature; this module raises ``UpstreamUnavailable`` or
``OutputValidationFailed`` when no deployment gave a usable answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace

from gateway import errors
from gateway.providers import get_provider
from gateway.resilience import (
    BreakerStore,
    backoff_seconds,
    call_with_retries,
    get_breaker_store,
)
from gateway.routing import Deployment
from gateway.types import Attempt, ChatRequest, ChatResult, EmbedResult, StreamEvent

Validator = Callable[[ChatResult], str | None]


@dataclass
class LadderOutcome:
    result: ChatResult | EmbedResult
    attempts: list[Attempt]
    deployment: str
    fallback_used: bool


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


async def _attempt_with_breaker(
    deployment: Deployment,
    store: BreakerStore,
    attempts: list,
    deadline: float,
    run,
    *,
    probe: bool,
):
    """Run one deployment's attempts (with retries; a probe gets exactly one try)."""

    async def one(timeout: float, retry: int):
        started = time.perf_counter()
        try:
            value = await run(timeout)
        except errors.ProviderError as exc:
            attempts.append(
                Attempt(
                    deployment=deployment.name,
                    provider=deployment.provider,
                    outcome="error",
                    error_type=exc.kind,
                    status=exc.status,
                    latency_ms=_ms(started),
                    retry=retry,
                )
            )
            if exc.kind != "rejected":  # a 4xx is our request's fault, not the deployment's
                await store.record_failure(deployment.name, exc.kind)
            raise
        attempts.append(
            Attempt(
                deployment=deployment.name,
                provider=deployment.provider,
                outcome="ok",
                latency_ms=_ms(started),
                retry=retry,
            )
        )
        await store.record_success(deployment.name)
        return value

    return await call_with_retries(
        one,
        max_retries=0 if probe else deployment.max_retries,
        deadline=deadline,
        per_attempt_timeout=deployment.timeout_s,
    )


def _corrective(request: ChatRequest, result: ChatResult, problem: str) -> ChatRequest:
    messages = [
        *request.messages,
        {"role": "assistant", "content": result.content},
        {
            "role": "user",
            "content": (
                "Your previous answer did not satisfy the required output format: "
                f"{problem}\nAnswer again, following the required format exactly."
            ),
        },
    ]
    return replace(request, messages=messages)


async def run_chat(
    request: ChatRequest,
    deployments: Sequence[Deployment],
    *,
    deadline_s: float,
    validate: Validator | None = None,
    store: BreakerStore | None = None,
) -> LadderOutcome:
    store = store or get_breaker_store()
    deadline = time.monotonic() + deadline_s
    attempts: list[Attempt] = []
    invalid_output = False
    spent_in = spent_out = 0  # tokens of answers thrown away (still billed by the provider)
    for index, deployment in enumerate(deployments):
        if time.monotonic() >= deadline:
            break
        verdict = await store.acquire(deployment.name)
        if verdict == "deny":
            attempts.append(
                Attempt(
                    deployment=deployment.name,
                    provider=deployment.provider,
                    outcome="skipped_open_circuit",
                )
            )
            continue
        provider = get_provider(deployment)

        async def call(timeout: float, req=request, dep=deployment, prov=provider):
            return await prov.complete(req, dep, timeout)

        try:
            result = await _attempt_with_breaker(
                deployment, store, attempts, deadline, call, probe=verdict == "probe"
            )
            if validate is not None:
                problem = validate(result)
                if problem:
                    attempts[-1].outcome = "invalid_output"
                    spent_in += result.input_tokens
                    spent_out += result.output_tokens
                    retry_request = _corrective(request, result, problem)

                    async def again(
                        timeout: float, req=retry_request, dep=deployment, prov=provider
                    ):
                        return await prov.complete(req, dep, timeout)

                    result = await _attempt_with_breaker(
                        deployment, store, attempts, deadline, again, probe=True
                    )
                    problem = validate(result)
                    if problem:
                        attempts[-1].outcome = "invalid_output"
                        spent_in += result.input_tokens
                        spent_out += result.output_tokens
                        invalid_output = True
                        continue
        except errors.ProviderError:
            continue
        result.input_tokens += spent_in
        result.output_tokens += spent_out
        return LadderOutcome(
            result=result,
            attempts=attempts,
            deployment=deployment.name,
            fallback_used=index > 0 or any(a.outcome != "ok" for a in attempts),
        )
    if invalid_output:
        raise errors.OutputValidationFailed(
            "The model's answer did not satisfy the output contract, even after a correction.",
            attempts=attempts,
        )
    raise errors.UpstreamUnavailable(attempts=attempts)


async def stream_chat(
    request: ChatRequest,
    deployments: Sequence[Deployment],
    *,
    deadline_s: float,
    store: BreakerStore | None = None,
) -> AsyncIterator[StreamEvent]:
    """Stream from the first deployment that starts answering.

    Failures before the first token fall back (and retry) transparently; a failure after it
    raises ``StreamInterrupted`` into the iterator, after the text already yielded.
    """
    store = store or get_breaker_store()
    deadline = time.monotonic() + deadline_s
    attempts: list[Attempt] = []
    for index, deployment in enumerate(deployments):
        if time.monotonic() >= deadline:
            break
        verdict = await store.acquire(deployment.name)
        if verdict == "deny":
            attempts.append(
                Attempt(
                    deployment=deployment.name,
                    provider=deployment.provider,
                    outcome="skipped_open_circuit",
                )
            )
            continue
        provider = get_provider(deployment)
        max_tries = 1 if verdict == "probe" else deployment.max_retries + 1
        for retry in range(max_tries):
            started = time.perf_counter()
            timeout = max(0.05, min(deployment.timeout_s, deadline - time.monotonic()))
            sent_any = False
            try:
                async for event in provider.stream(request, deployment, timeout):
                    if event.kind == "delta":
                        sent_any = True
                        yield event
                    else:
                        attempts.append(
                            Attempt(
                                deployment=deployment.name,
                                provider=deployment.provider,
                                outcome="ok",
                                latency_ms=_ms(started),
                                retry=retry,
                            )
                        )
                        await store.record_success(deployment.name)
                        yield replace(
                            event, attempts=attempts, fallback_used=index > 0 or retry > 0
                        )
                        return
            except errors.ProviderError as exc:
                attempts.append(
                    Attempt(
                        deployment=deployment.name,
                        provider=deployment.provider,
                        outcome="error",
                        error_type=exc.kind,
                        status=exc.status,
                        latency_ms=_ms(started),
                        retry=retry,
                    )
                )
                if exc.kind != "rejected":
                    await store.record_failure(deployment.name, exc.kind)
                if sent_any:
                    raise errors.StreamInterrupted(
                        "The provider failed in the middle of the answer.",
                        attempts=attempts,
                    ) from exc
                if not exc.retryable:
                    break
                wait = max(backoff_seconds(retry + 1), exc.retry_after or 0)
                if retry + 1 >= max_tries or time.monotonic() + wait >= deadline:
                    break
                await asyncio.sleep(wait)
    raise errors.UpstreamUnavailable(attempts=attempts)


async def run_embed(
    texts: list[str],
    deployments: Sequence[Deployment],
    *,
    deadline_s: float,
    dimensions: int | None = None,
    store: BreakerStore | None = None,
) -> LadderOutcome:
    store = store or get_breaker_store()
    deadline = time.monotonic() + deadline_s
    attempts: list[Attempt] = []
    for index, deployment in enumerate(deployments):
        verdict = await store.acquire(deployment.name)
        if verdict == "deny":
            attempts.append(
                Attempt(
                    deployment=deployment.name,
                    provider=deployment.provider,
                    outcome="skipped_open_circuit",
                )
            )
            continue
        provider = get_provider(deployment)

        async def call(timeout: float, dep=deployment, prov=provider):
            return await prov.embed(texts, dep, timeout, dimensions)

        try:
            result = await _attempt_with_breaker(
                deployment, store, attempts, deadline, call, probe=verdict == "probe"
            )
        except errors.ProviderError:
            continue
        return LadderOutcome(
            result=result, attempts=attempts, deployment=deployment.name, fallback_used=index > 0
        )
    raise errors.UpstreamUnavailable(attempts=attempts)
