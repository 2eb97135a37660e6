"""The OpenAI-compatible API: ``/v1/chat/completions`` (with ``stream``), ``/v1/embeddings``,
``/v1/models``. Async views: the provider call awaits on the event loop, the database work runs on
the request's own thread. Errors use OpenAI's (and our contract's) error shape."""

from __future__ import annotations

import base64
import json
import struct
import time
from functools import wraps

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from config.errors import error_json_response
from gateway import errors, service
from gateway.records import CallContext
from gateway.schemas import ChatCompletionBody, EmbeddingsBody, parse_body
from gateway.types import ChatRequest


def api_view(*methods: str, scope: str = "inference"):
    """Method and scope checks, and every SwitchboardError rendered as JSON."""

    def decorator(view):
        @csrf_exempt
        @wraps(view)
        async def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            try:
                if request.method not in methods:
                    raise errors.SwitchboardError(
                        f"{request.method} is not allowed here.",
                        status=405,
                        code="method_not_allowed",
                    )
                if scope not in request.api_key.scopes:
                    raise errors.PermissionDenied(
                        f"This API key lacks the {scope!r} scope.", code="missing_scope"
                    )
                return await view(request, *args, **kwargs)
            except RequestDataTooBig:
                return error_json_response(
                    errors.PayloadTooLarge("The request body is larger than this server accepts.")
                )
            except errors.SwitchboardError as exc:
                return error_json_response(exc)

        return wrapper

    return decorator


def _context(
    request: HttpRequest, *, alias: str, user: str | None, mode: str, endpoint: str
) -> CallContext:
    key = request.api_key
    return CallContext(
        tenant=request.tenant,
        request_id=request.request_id,
        api_key_id=key.id,
        api_key_prefix=key.prefix,
        end_user=user or "",
        feature="direct",
        mode=mode,
        endpoint=endpoint,
        alias=alias,
    )


def _chat_request(body: ChatCompletionBody) -> ChatRequest:
    return ChatRequest(
        messages=[m.model_dump(exclude_none=True) for m in body.messages],
        temperature=body.temperature,
        top_p=body.top_p,
        max_tokens=body.max_completion_tokens or body.max_tokens,
        stop=body.stop,
        response_format=(
            body.response_format.model_dump(by_alias=True, exclude_none=True)
            if body.response_format and body.response_format.type != "text"
            else None
        ),
        tools=body.tools,
        tool_choice=body.tool_choice,
        user=body.user,
        seed=body.seed,
        stream_include_usage=bool(body.stream_options and body.stream_options.include_usage),
    )


def _with_headers(response: HttpResponse, headers: dict[str, str]) -> HttpResponse:
    for name, value in headers.items():
        response[name] = value
    return response


@api_view("POST")
async def chat_completions(request: HttpRequest) -> HttpResponse:
    body = parse_body(request.body, ChatCompletionBody)
    chat = _chat_request(body)
    if body.stream:
        return await _stream_response(request, body, chat)
    ctx = _context(request, alias=body.model, user=body.user, mode="sync", endpoint="chat")
    outcome = await service.execute_chat(ctx, chat)
    result = outcome.result
    message: dict = {"role": "assistant", "content": outcome.content}
    if result is not None and result.tool_calls:
        message["tool_calls"] = result.tool_calls
    record = outcome.record
    payload = {
        "id": record.call_id,
        "object": "chat.completion",
        "created": int(record.created_at.timestamp()),
        "model": (result.provider_model if result else "") or body.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": result.finish_reason if result else "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": record.input_tokens,
            "completion_tokens": record.output_tokens,
            "total_tokens": record.input_tokens + record.output_tokens,
        },
        "system_fingerprint": None,
        "switchboard": {
            "deployment": record.deployment,
            "degraded": outcome.degraded,
            "cached": outcome.cached,
            "fallback": record.fallback_used,
        },
    }
    return _with_headers(JsonResponse(payload), outcome.headers)


async def _stream_response(
    request: HttpRequest, body: ChatCompletionBody, chat: ChatRequest
) -> HttpResponse:
    ctx = _context(request, alias=body.model, user=body.user, mode="stream", endpoint="chat")
    headers, events = await service.stream_chat(ctx, chat)
    created = int(time.time())
    include_usage = chat.stream_include_usage

    def chunk(delta: dict, finish_reason=None, model: str = body.model) -> bytes:
        data = {
            "id": ctx.call_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [
                {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
            ],
        }
        return b"data: " + json.dumps(data).encode() + b"\n\n"

    async def sse():
        yield chunk({"role": "assistant", "content": ""})
        async for event in events:
            if event["type"] == "delta":
                yield chunk({"content": event["content"]})
            elif event["type"] == "done":
                yield chunk(
                    {},
                    finish_reason=event["finish_reason"] or "stop",
                    model=event.get("model") or body.model,
                )
                if include_usage:
                    usage = {
                        "id": ctx.call_id,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": event.get("model") or body.model,
                        "choices": [],
                        "usage": event["usage"],
                        "switchboard": {"deployment": event["deployment"]},
                    }
                    yield b"data: " + json.dumps(usage).encode() + b"\n\n"
            elif event["type"] == "error":
                yield b"data: " + json.dumps({"error": event["error"]}).encode() + b"\n\n"
                return
        yield b"data: [DONE]\n\n"

    response = StreamingHttpResponse(sse(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return _with_headers(response, headers)


@api_view("POST")
async def embeddings(request: HttpRequest) -> HttpResponse:
    body = parse_body(request.body, EmbeddingsBody)
    texts = [body.input] if isinstance(body.input, str) else list(body.input)
    ctx = _context(request, alias=body.model, user=body.user, mode="sync", endpoint="embeddings")
    outcome = await service.execute_embeddings(ctx, texts, dimensions=body.dimensions)
    encode = _base64_floats if body.encoding_format == "base64" else list
    payload = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encode(vector)}
            for i, vector in enumerate(outcome.vectors)
        ],
        "model": outcome.model or body.model,
        "usage": {"prompt_tokens": outcome.input_tokens, "total_tokens": outcome.input_tokens},
    }
    return _with_headers(JsonResponse(payload), outcome.headers)


def _base64_floats(vector: list[float]) -> str:
    """OpenAI's compact encoding: little-endian float32, base64."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


@api_view("GET")
async def models(request: HttpRequest) -> HttpResponse:
    aliases = service.visible_aliases(request.tenant)
    payload = {
        "object": "list",
        "data": [
            {"id": alias, "object": "model", "created": 0, "owned_by": "switchboard"}
            for alias in aliases
        ],
    }
    return JsonResponse(payload)
