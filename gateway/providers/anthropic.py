"""Anthropic's Messages API through the official ``anthropic`` SDK.

Translates our OpenAI-shaped request: system messages become the ``system`` parameter, roles
alternate (consecutive same-role messages merge), tool calls and results become tool_use and
tool_result blocks, and a ``json_schema`` response format becomes a forced tool call whose input
schema is the contract (the tool's input is the answer).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import anthropic

from gateway import errors
from gateway.providers.base import ClientCache
from gateway.routing import Deployment
from gateway.types import ChatRequest, ChatResult, EmbedResult, StreamEvent

_STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
}


def _client(deployment: Deployment) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        api_key=deployment.api_key() or "not-needed",
        base_url=deployment.base_url,
        max_retries=0,
        timeout=deployment.timeout_s,
    )


_clients = ClientCache(_client)


def translate_error(exc: Exception) -> errors.ProviderError:
    if isinstance(exc, anthropic.APITimeoutError):
        return errors.ProviderTimeout("the provider did not answer in time")
    if isinstance(exc, anthropic.APIConnectionError):
        return errors.ProviderConnectionError("could not connect to the provider")
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        retry_after = None
        value = exc.response.headers.get("retry-after") if exc.response is not None else None
        if value:
            try:
                retry_after = float(value)
            except ValueError:
                retry_after = None
        if status == 429:
            return errors.ProviderRateLimited(
                "rate limited by the provider", status=status, retry_after=retry_after
            )
        if status >= 500 or status == 529:
            return errors.ProviderServerError(
                f"provider error {status}", status=status, retry_after=retry_after
            )
        return errors.ProviderRequestRejected(
            f"provider rejected the request ({status})", status=status
        )
    return errors.ProviderBadResponse(f"unexpected provider response: {type(exc).__name__}")


def _text_of(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text") or "" for p in content if isinstance(p, dict))
    return ""


def _blocks(content) -> list[dict]:
    text = _text_of(content)
    return [{"type": "text", "text": text}] if text else []


def translate_messages(messages: list[dict]) -> tuple[str, list[dict]]:
    """OpenAI-shaped messages → (system text, alternating Anthropic messages)."""
    system_parts: list[str] = []
    out: list[dict] = []

    def append(role: str, blocks: list[dict]) -> None:
        if not blocks:
            return
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": list(blocks)})

    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            system_parts.append(_text_of(message.get("content")))
        elif role == "user":
            append("user", _blocks(message.get("content")))
        elif role == "assistant":
            blocks = _blocks(message.get("content"))
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                try:
                    arguments = json.loads(function.get("arguments") or "{}")
                except ValueError:
                    arguments = {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id"),
                        "name": function.get("name"),
                        "input": arguments,
                    }
                )
            append("assistant", blocks)
        elif role == "tool":
            append(
                "user",
                [
                    {
                        "type": "tool_result",
                        "tool_use_id": message.get("tool_call_id"),
                        "content": _text_of(message.get("content")),
                    }
                ],
            )
    if out and out[0]["role"] != "user":
        out.insert(0, {"role": "user", "content": [{"type": "text", "text": "(continue)"}]})
    return "\n\n".join(p for p in system_parts if p), out


def _tools(request: ChatRequest) -> tuple[list[dict] | None, dict | None, str | None]:
    """(tools, tool_choice, structured-output tool name)."""
    response_format = request.response_format or {}
    if response_format.get("type") == "json_schema":
        spec = response_format.get("json_schema") or {}
        name = spec.get("name") or "answer"
        tool = {
            "name": name,
            "description": spec.get("description")
            or "Record the answer in exactly this structure.",
            "input_schema": spec.get("schema") or {"type": "object"},
        }
        return [tool], {"type": "tool", "name": name}, name
    if not request.tools:
        return None, None, None
    tools = []
    for tool in request.tools:
        function = tool.get("function") or {}
        tools.append(
            {
                "name": function.get("name"),
                "description": function.get("description", ""),
                "input_schema": function.get("parameters") or {"type": "object"},
            }
        )
    choice = request.tool_choice
    if choice == "required":
        tool_choice = {"type": "any"}
    elif choice == "none":
        tool_choice = {"type": "none"}
    elif isinstance(choice, dict) and choice.get("function"):
        tool_choice = {"type": "tool", "name": choice["function"].get("name")}
    else:
        tool_choice = {"type": "auto"}
    return tools, tool_choice, None


def _params(request: ChatRequest, deployment: Deployment) -> tuple[dict, str | None]:
    system, messages = translate_messages(request.messages)
    if (request.response_format or {}).get("type") == "json_object":
        system = (system + "\n\n" if system else "") + "Answer with a single JSON object only."
    params: dict = {
        "model": deployment.model,
        "messages": messages,
        "max_tokens": request.max_tokens or deployment.max_output_tokens,
    }
    if system:
        params["system"] = system
    # Sampling parameters travel in the body as-is: recent SDK releases no longer list them as
    # arguments, while the Messages API still accepts them.
    sampling = {}
    if request.temperature is not None:
        sampling["temperature"] = min(request.temperature, 1.0)
    if request.top_p is not None:
        sampling["top_p"] = request.top_p
    if sampling:
        params["extra_body"] = sampling
    if request.stop:
        params["stop_sequences"] = [request.stop] if isinstance(request.stop, str) else request.stop
    tools, tool_choice, structured = _tools(request)
    if tools:
        params["tools"] = tools
        params["tool_choice"] = tool_choice
    return params, structured


class AnthropicProvider:
    async def complete(
        self, request: ChatRequest, deployment: Deployment, timeout: float
    ) -> ChatResult:
        client = _clients.get(deployment)
        params, structured = _params(request, deployment)
        try:
            message = await client.messages.create(**params, timeout=timeout)
        except anthropic.AnthropicError as exc:
            raise translate_error(exc) from exc
        except ValueError as exc:  # the body is not JSON
            raise errors.ProviderBadResponse("the provider's answer is not valid") from exc
        try:
            text_parts, tool_calls, structured_input = [], [], None
            for block in message.content:
                if block.type == "text":
                    text_parts.append(block.text)
                elif block.type == "tool_use":
                    if structured and block.name == structured:
                        structured_input = block.input
                    else:
                        tool_calls.append(
                            {
                                "id": block.id,
                                "type": "function",
                                "function": {
                                    "name": block.name,
                                    "arguments": json.dumps(block.input),
                                },
                            }
                        )
            usage = message.usage
        except (TypeError, KeyError, AttributeError) as exc:
            raise errors.ProviderBadResponse("the provider's answer is not valid") from exc
        if structured is not None:
            content = json.dumps(structured_input) if structured_input is not None else ""
            finish = "stop"
        else:
            content = "".join(text_parts)
            finish = _STOP_REASONS.get(message.stop_reason or "end_turn", "stop")
        return ChatResult(
            content=content,
            finish_reason=finish,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            deployment=deployment.name,
            provider=deployment.provider,
            provider_request_id=getattr(message, "_request_id", None) or message.id,
            provider_model=message.model or deployment.model,
            tool_calls=tool_calls or None,
        )

    async def stream(
        self, request: ChatRequest, deployment: Deployment, timeout: float
    ) -> AsyncIterator[StreamEvent]:
        client = _clients.get(deployment)
        params, structured = _params(request, deployment)
        parts: list[str] = []
        input_tokens = output_tokens = 0
        stop_reason = "end_turn"
        model = deployment.model
        request_id = ""
        try:
            raw = await client.messages.with_raw_response.create(
                **params, stream=True, timeout=timeout
            )
            request_id = raw.headers.get("request-id", "")
            async for event in await raw.parse():
                if event.type == "message_start":
                    input_tokens = event.message.usage.input_tokens
                    model = event.message.model or model
                elif event.type == "content_block_delta":
                    delta = event.delta
                    text = getattr(delta, "text", None) or getattr(delta, "partial_json", None)
                    if text:
                        parts.append(text)
                        yield StreamEvent(kind="delta", text=text)
                elif event.type == "message_delta":
                    output_tokens = event.usage.output_tokens
                    stop_reason = event.delta.stop_reason or stop_reason
        except anthropic.AnthropicError as exc:
            raise translate_error(exc) from exc
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise errors.ProviderBadResponse("the provider's stream is not valid") from exc
        finish = "stop" if structured else _STOP_REASONS.get(stop_reason, "stop")
        yield StreamEvent(
            kind="final",
            result=ChatResult(
                content="".join(parts),
                finish_reason=finish,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
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
        raise errors.UnsupportedOperation("Anthropic offers no embeddings API")


PROVIDER = AnthropicProvider()
