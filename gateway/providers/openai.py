"""OpenAI, and any OpenAI-compatible server (vLLM, Ollama, llama.cpp, the simulator), through the
official ``openai`` SDK."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import openai

from gateway import errors
from gateway.providers.base import ClientCache
from gateway.routing import Deployment
from gateway.types import ChatRequest, ChatResult, EmbedResult, StreamEvent, estimate_tokens


def _client(deployment: Deployment) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key=deployment.api_key() or "not-needed",
        base_url=deployment.base_url,
        max_retries=0,  # the ladder owns retries
        timeout=deployment.timeout_s,
    )


_clients = ClientCache(_client)


def _retry_after(response) -> float | None:
    if response is None:
        return None
    headers = response.headers
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return float(value) / divisor
            except ValueError:
                continue
    return None


def translate_error(exc: Exception) -> errors.ProviderError:
    """SDK exceptions → our provider errors (the ladder decides what to do with them)."""
    if isinstance(exc, openai.APITimeoutError):
        return errors.ProviderTimeout("the provider did not answer in time")
    if isinstance(exc, openai.APIConnectionError):
        return errors.ProviderConnectionError("could not connect to the provider")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        retry_after = _retry_after(exc.response)
        if status == 429:
            return errors.ProviderRateLimited(
                "rate limited by the provider", status=status, retry_after=retry_after
            )
        if status >= 500:
            return errors.ProviderServerError(
                f"provider error {status}", status=status, retry_after=retry_after
            )
        if status == 408:
            return errors.ProviderTimeout("provider timeout", status=status)
        return errors.ProviderRequestRejected(
            f"provider rejected the request ({status})", status=status
        )
    return errors.ProviderBadResponse(f"unexpected provider response: {type(exc).__name__}")


def _params(request: ChatRequest, deployment: Deployment) -> dict:
    params: dict = {"model": deployment.model, "messages": request.messages}
    for name in ("temperature", "top_p", "stop", "seed", "tools", "tool_choice", "user"):
        value = getattr(request, name)
        if value is not None:
            params[name] = value
    if request.max_tokens is not None:
        params["max_tokens"] = request.max_tokens
    if request.response_format is not None:
        params["response_format"] = request.response_format
    return params


def _tool_calls(message) -> list[dict] | None:
    calls = getattr(message, "tool_calls", None)
    if not calls:
        return None
    return [
        {
            "id": c.id,
            "type": "function",
            "function": {"name": c.function.name, "arguments": c.function.arguments},
        }
        for c in calls
    ]


class OpenAIProvider:
    async def complete(
        self, request: ChatRequest, deployment: Deployment, timeout: float
    ) -> ChatResult:
        client = _clients.get(deployment)
        try:
            response = await client.chat.completions.create(
                **_params(request, deployment), timeout=timeout
            )
        except openai.OpenAIError as exc:
            raise translate_error(exc) from exc
        except ValueError as exc:  # the body is not JSON
            raise errors.ProviderBadResponse("the provider's answer is not valid") from exc
        try:
            choice = response.choices[0]
            content = choice.message.content or ""
            usage = response.usage
        except (TypeError, KeyError, AttributeError, IndexError) as exc:
            raise errors.ProviderBadResponse("the provider's answer is not valid") from exc
        estimated = usage is None
        prompt_text = json.dumps(request.messages)
        return ChatResult(
            content=content,
            finish_reason=choice.finish_reason or "stop",
            input_tokens=usage.prompt_tokens if usage else estimate_tokens(prompt_text),
            output_tokens=usage.completion_tokens if usage else estimate_tokens(content),
            tokens_estimated=estimated,
            deployment=deployment.name,
            provider=deployment.provider,
            provider_request_id=getattr(response, "_request_id", None) or response.id or "",
            provider_model=response.model or deployment.model,
            tool_calls=_tool_calls(choice.message),
        )

    async def stream(
        self, request: ChatRequest, deployment: Deployment, timeout: float
    ) -> AsyncIterator[StreamEvent]:
        client = _clients.get(deployment)
        parts: list[str] = []
        finish_reason = "stop"
        usage = None
        model = deployment.model
        request_id = ""
        try:
            raw = await client.chat.completions.with_raw_response.create(
                **_params(request, deployment),
                stream=True,
                stream_options={"include_usage": True},
                timeout=timeout,
            )
            request_id = raw.headers.get("x-request-id", "")
            stream = raw.parse()
            async for chunk in stream:
                model = chunk.model or model
                if chunk.usage is not None:
                    usage = chunk.usage
                for choice in chunk.choices or []:
                    text = choice.delta.content if choice.delta else None
                    if text:
                        parts.append(text)
                        yield StreamEvent(kind="delta", text=text)
                    if choice.finish_reason:
                        finish_reason = choice.finish_reason
        except openai.OpenAIError as exc:
            raise translate_error(exc) from exc
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise errors.ProviderBadResponse("the provider's stream is not valid") from exc
        content = "".join(parts)
        yield StreamEvent(
            kind="final",
            result=ChatResult(
                content=content,
                finish_reason=finish_reason,
                input_tokens=usage.prompt_tokens
                if usage
                else estimate_tokens(json.dumps(request.messages)),
                output_tokens=usage.completion_tokens if usage else estimate_tokens(content),
                tokens_estimated=usage is None,
                deployment=deployment.name,
                provider=deployment.provider,
                provider_request_id=request_id,
                provider_model=model,
            ),
        )

    async def embed(
        self,
        texts: list[str],
        deployment: Deployment,
        timeout: float,
        dimensions: int | None = None,
    ) -> EmbedResult:
        client = _clients.get(deployment)
        params: dict = {"model": deployment.model, "input": texts}
        if dimensions is not None:
            params["dimensions"] = dimensions
        try:
            response = await client.embeddings.create(**params, timeout=timeout)
            vectors = [item.embedding for item in sorted(response.data, key=lambda d: d.index)]
        except openai.OpenAIError as exc:
            raise translate_error(exc) from exc
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise errors.ProviderBadResponse("the provider's embeddings are not valid") from exc
        if len(vectors) != len(texts):
            raise errors.ProviderBadResponse("the provider returned the wrong number of vectors")
        usage = response.usage
        return EmbedResult(
            vectors=vectors,
            input_tokens=usage.prompt_tokens if usage else sum(estimate_tokens(t) for t in texts),
            tokens_estimated=usage is None,
            model=response.model or deployment.model,
            deployment=deployment.name,
            provider=deployment.provider,
        )


PROVIDER = OpenAIProvider()
