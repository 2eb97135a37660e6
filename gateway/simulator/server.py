"""The simulator's HTTP server: a raw ASGI app on uvicorn, in a background thread or a process.

Endpoints: OpenAI ``POST /v1/chat/completions`` (and SSE streaming), ``POST /v1/embeddings``,
``GET /v1/models``; Anthropic ``POST /v1/messages`` (and streaming, tool use). Control:
``POST /_sim/control`` (``{"action": "fault", ...}`` / ``"clear"`` / ``"script"``),
``GET /_sim/requests``, ``POST /_sim/reset``.

Faults (each optionally limited to a path and to the next ``count`` requests):
``status`` (an HTTP error with the provider's error body and optional Retry-After), ``hang``
(sleep before answering), ``latency`` (added per request, ``chunk_delay`` per stream chunk),
``malformed`` (200 with a body that is not the expected JSON), ``midstream_failure`` (a stream
cut after ``after_chunks`` chunks) and ``down`` (the port stops accepting connections until the
fault is cleared, or for ``seconds``).
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from gateway.simulator import responses

logger = logging.getLogger(__name__)

FAULT_KINDS = {"status", "hang", "latency", "malformed", "midstream_failure", "down"}


@dataclass
class Fault:
    kind: str
    path: str | None = None
    count: int | None = None  # None: until cleared
    status: int = 500
    retry_after: float | None = None
    seconds: float = 0.0
    chunk_delay: float = 0.0
    after_chunks: int = 2

    def matches(self, path: str) -> bool:
        return self.path is None or path.startswith(self.path)


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    faults: list[Fault] = field(default_factory=list)
    script: deque = field(default_factory=deque)
    requests: list[dict] = field(default_factory=list)

    def take_fault(self, path: str, kinds: set[str]) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.kind in kinds and fault.matches(path):
                    if fault.count is not None:
                        fault.count -= 1
                        if fault.count <= 0:
                            self.faults.remove(fault)
                    return fault
        return None

    def next_scripted(self) -> Any:
        with self.lock:
            return self.script.popleft() if self.script else None


def _error_body(status: int, anthropic: bool) -> dict:
    kinds = {
        400: "invalid_request_error",
        401: "authentication_error",
        404: "not_found_error",
        429: "rate_limit_error",
        500: "api_error",
        503: "overloaded_error",
    }
    kind = kinds.get(status, "api_error")
    message = f"Simulated error {status}"
    if anthropic:
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": kind, "param": None, "code": str(status)}}


class _App:
    """The ASGI application. Holds no state of its own: everything is in ``_State``."""

    def __init__(self, state: _State, sim: SimulatorServer) -> None:
        self.state = state
        self.sim = sim

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        method = scope["method"]
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            payload = None
        if path.startswith("/_sim/"):
            await self._control(method, path, payload, send)
            return
        with self.state.lock:
            self.state.requests.append(
                {
                    "method": method,
                    "path": path,
                    "headers": headers,
                    "json": payload,
                    "time": time.time(),
                }
            )
        await self._serve(method, path, payload or {}, send)

    # --- control -----------------------------------------------------------------------------

    async def _control(self, method: str, path: str, payload: Any, send) -> None:
        if path == "/_sim/requests" and method == "GET":
            await _json(send, 200, {"requests": self.sim.requests})
            return
        if path == "/_sim/reset" and method == "POST":
            self.sim.reset()
            await _json(send, 200, {"ok": True})
            return
        if path == "/_sim/control" and method == "POST" and isinstance(payload, dict):
            action = payload.get("action")
            try:
                if action == "fault":
                    options = {k: v for k, v in payload.items() if k not in {"action", "kind"}}
                    if payload.get("kind") == "down":
                        # Answered first, then the port closes (for `seconds`, default 5).
                        await _json(send, 200, {"ok": True})
                        seconds = float(options.get("seconds") or 5)
                        threading.Thread(
                            target=self.sim._outage, args=(seconds,), daemon=True
                        ).start()
                        return
                    self.sim.set_fault(payload.get("kind"), **options)
                elif action == "clear":
                    self.sim.clear_faults()
                elif action == "script":
                    self.sim.script(payload.get("replies") or [])
                else:
                    raise ValueError(f"unknown action {action!r}")
            except (TypeError, ValueError) as exc:
                await _json(send, 400, {"error": str(exc)})
                return
            await _json(send, 200, {"ok": True})
            return
        await _json(send, 404, {"error": "unknown control endpoint"})

    # --- provider endpoints --------------------------------------------------------------------

    async def _serve(self, method: str, path: str, payload: dict, send) -> None:
        anthropic = path.startswith("/v1/messages")
        latency = self.state.take_fault(path, {"latency"})
        if latency and latency.seconds:
            await asyncio.sleep(latency.seconds)
        hang = self.state.take_fault(path, {"hang"})
        if hang:
            await asyncio.sleep(hang.seconds or 3600)
        status = self.state.take_fault(path, {"status"})
        if status:
            extra = {}
            if status.retry_after is not None:
                extra["retry-after"] = str(status.retry_after)
                extra["retry-after-ms"] = str(int(status.retry_after * 1000))
            await _json(send, status.status, _error_body(status.status, anthropic), extra)
            return
        if self.state.take_fault(path, {"malformed"}):
            await _raw(
                send, 200, b'{"id": "broken", "choices": [ this is not json', "application/json"
            )
            return
        chunk_delay = latency.chunk_delay if latency else 0.0
        if method == "GET" and path == "/v1/models":
            await _json(
                send,
                200,
                {
                    "object": "list",
                    "data": [
                        {
                            "id": "sim-large",
                            "object": "model",
                            "created": 0,
                            "owned_by": "simulator",
                        },
                        {
                            "id": "sim-small",
                            "object": "model",
                            "created": 0,
                            "owned_by": "simulator",
                        },
                    ],
                },
            )
        elif method == "POST" and path == "/v1/chat/completions":
            await self._openai_chat(path, payload, send, chunk_delay)
        elif method == "POST" and path == "/v1/embeddings":
            await self._openai_embeddings(payload, send)
        elif method == "POST" and anthropic:
            await self._anthropic_messages(path, payload, send, chunk_delay)
        else:
            await _json(send, 404, _error_body(404, anthropic))

    def _reply(self, messages: list[dict], response_format: dict | None) -> dict:
        scripted = self.state.next_scripted()
        if isinstance(scripted, str):
            return {"content": scripted}
        if isinstance(scripted, dict):
            return scripted
        answer = responses.json_answer(response_format)
        return {"content": answer if answer is not None else responses.default_text(messages)}

    async def _openai_chat(self, path: str, body: dict, send, chunk_delay: float) -> None:
        messages = body.get("messages") or []
        if not isinstance(messages, list) or not messages:
            await _json(send, 400, _error_body(400, False))
            return
        reply = self._reply(messages, body.get("response_format"))
        content = reply.get("content", "")
        model = body.get("model") or "sim-large"
        prompt_tokens = sum(
            responses.count_tokens(responses.message_text(m.get("content")))
            for m in messages
            if isinstance(m, dict)
        ) + 3 * len(messages)
        completion_tokens = responses.count_tokens(content)
        call_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        extra = {"x-request-id": f"req_{uuid.uuid4().hex}"}
        if not body.get("stream"):
            await _json(
                send,
                200,
                {
                    "id": call_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": content, "refusal": None},
                            "finish_reason": reply.get("finish_reason", "stop"),
                            "logprobs": None,
                        }
                    ],
                    "usage": usage,
                    "system_fingerprint": "fp_simulated",
                },
                extra,
            )
            return
        cut = self.state.take_fault(path, {"midstream_failure"})
        await _start_stream(send, extra)

        def chunk(delta: dict, finish=None) -> dict:
            return {
                "id": call_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_simulated",
                "choices": [
                    {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
                ],
            }

        await _sse(send, chunk({"role": "assistant", "content": ""}))
        for number, piece in enumerate(_pieces(content)):
            if cut and number >= cut.after_chunks:
                raise _Disconnect  # the response never ends: uvicorn drops the connection
            if chunk_delay:
                await asyncio.sleep(chunk_delay)
            await _sse(send, chunk({"content": piece}))
        await _sse(send, chunk({}, reply.get("finish_reason", "stop")))
        if (body.get("stream_options") or {}).get("include_usage"):
            final = chunk({})
            final["choices"] = []
            final["usage"] = usage
            await _sse(send, final)
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})

    async def _openai_embeddings(self, body: dict, send) -> None:
        texts = body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts:
            await _json(send, 400, _error_body(400, False))
            return
        dimensions = int(body.get("dimensions") or 1536)
        encode = responses.base64_floats if body.get("encoding_format") == "base64" else list
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": encode(responses.embedding_for(str(t), dimensions)),
            }
            for i, t in enumerate(texts)
        ]
        tokens = sum(responses.count_tokens(str(t)) for t in texts)
        await _json(
            send,
            200,
            {
                "object": "list",
                "data": data,
                "model": body.get("model") or "sim-embed",
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
            {"x-request-id": f"req_{uuid.uuid4().hex}"},
        )

    async def _anthropic_messages(self, path: str, body: dict, send, chunk_delay: float) -> None:
        messages = body.get("messages") or []
        if not isinstance(messages, list) or not messages or not body.get("max_tokens"):
            await _json(send, 400, _error_body(400, True))
            return
        tools = body.get("tools") or []
        choice = body.get("tool_choice") or {}
        tool = None
        if tools and choice.get("type") in {"tool", "any"}:
            wanted = choice.get("name")
            tool = next((t for t in tools if t.get("name") == wanted), tools[0])
        scripted = self.state.next_scripted()
        if isinstance(scripted, str):
            scripted = {"content": scripted}
        model = body.get("model") or "claude-sim"
        msg_id = f"msg_{uuid.uuid4().hex[:24]}"
        input_tokens = responses.count_tokens(
            " ".join(responses.message_text(m.get("content")) for m in messages)
            + responses.message_text(body.get("system") or "")
        ) + 3 * len(messages)
        if tool is not None:
            if scripted and "tool_input" in scripted:
                tool_input = scripted["tool_input"]
            elif scripted and "content" in scripted:
                try:
                    tool_input = json.loads(scripted["content"])
                except ValueError:
                    tool_input = {"raw": scripted["content"]}
            else:
                tool_input = responses.instance_for_schema(tool.get("input_schema") or {})
            blocks = [
                {
                    "type": "tool_use",
                    "id": f"toolu_{uuid.uuid4().hex[:20]}",
                    "name": tool["name"],
                    "input": tool_input,
                }
            ]
            stop_reason = "tool_use"
            output_text = json.dumps(tool_input)
        else:
            text = (scripted or {}).get("content") or responses.default_text(messages)
            blocks = [{"type": "text", "text": text}]
            stop_reason = (scripted or {}).get("stop_reason", "end_turn")
            output_text = text
        output_tokens = responses.count_tokens(output_text)
        extra = {"request-id": f"req_{uuid.uuid4().hex}"}
        message = {
            "id": msg_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": blocks,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        }
        if not body.get("stream"):
            await _json(send, 200, message, extra)
            return
        cut = self.state.take_fault(path, {"midstream_failure"})
        await _start_stream(send, extra)
        start = dict(
            message,
            content=[],
            stop_reason=None,
            usage={"input_tokens": input_tokens, "output_tokens": 1},
        )
        await _event(send, "message_start", {"type": "message_start", "message": start})
        block = blocks[0]
        if block["type"] == "text":
            await _event(
                send,
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            )
            pieces, delta_type, key = _pieces(block["text"]), "text_delta", "text"
        else:
            await _event(
                send,
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {
                        "type": "tool_use",
                        "id": block["id"],
                        "name": block["name"],
                        "input": {},
                    },
                },
            )
            pieces, delta_type, key = (
                _pieces(json.dumps(block["input"])),
                "input_json_delta",
                "partial_json",
            )
        for number, piece in enumerate(pieces):
            if cut and number >= cut.after_chunks:
                raise _Disconnect  # the response never ends: uvicorn drops the connection
            if chunk_delay:
                await asyncio.sleep(chunk_delay)
            await _event(
                send,
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": delta_type, key: piece},
                },
            )
        await _event(send, "content_block_stop", {"type": "content_block_stop", "index": 0})
        await _event(
            send,
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        )
        await _event(send, "message_stop", {"type": "message_stop"})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class _Disconnect(Exception):
    """Raised after a deliberately truncated stream; uvicorn then drops the connection."""


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)] if text else []


async def _json(send, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
    await _raw(send, status, json.dumps(payload).encode(), "application/json", headers)


async def _raw(
    send, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
) -> None:
    raw_headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    raw_headers += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _start_stream(send, headers: dict[str, str]) -> None:
    raw_headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
    raw_headers += [(k.encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": 200, "headers": raw_headers})


async def _sse(send, payload: dict) -> None:
    await send(
        {
            "type": "http.response.body",
            "body": b"data: " + json.dumps(payload).encode() + b"\n\n",
            "more_body": True,
        }
    )


async def _event(send, name: str, payload: dict) -> None:
    data = f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode()
    await send({"type": "http.response.body", "body": data, "more_body": True})


class SimulatorServer:
    """Run the simulator in a background thread (tests) or in the foreground (CLI)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port or _free_port(host)
        self._state = _State()
        self._app = _App(self._state, self)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._down = False
        self._lifecycle = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return self.base_url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.base_url

    def _config(self) -> uvicorn.Config:
        return uvicorn.Config(
            self._app,
            host=self.host,
            port=self.port,
            log_level="critical",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )

    def start(self) -> SimulatorServer:
        with self._lifecycle:
            if self._thread is not None:
                return self
            self._server = uvicorn.Server(self._config())
            self._thread = threading.Thread(target=self._server.run, name="simulator", daemon=True)
            self._thread.start()
            deadline = time.monotonic() + 10
            while not self._server.started:
                if time.monotonic() > deadline or not self._thread.is_alive():
                    raise RuntimeError(f"simulator did not start on {self.base_url}")
                time.sleep(0.01)
        return self

    def stop(self) -> None:
        with self._lifecycle:
            if self._server is None:
                return
            self._server.should_exit = True
            self._server.force_exit = True
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server = None
            self._thread = None

    def serve_forever(self) -> None:
        """Foreground mode for ``python -m gateway.simulator``."""
        while True:
            self._server = uvicorn.Server(self._config())
            self._server.run()
            if not self._down:
                return
            while self._down:
                time.sleep(0.05)

    # --- faults --------------------------------------------------------------------------------

    def set_fault(self, kind: str, **options: Any) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {sorted(FAULT_KINDS)}")
        if kind == "down":
            self._go_down()
            return
        known = {"path", "count", "status", "retry_after", "seconds", "chunk_delay", "after_chunks"}
        unknown = set(options) - known
        if unknown:
            raise ValueError(f"unknown fault option(s) {sorted(unknown)}")
        with self._state.lock:
            self._state.faults.append(Fault(kind=kind, **options))

    def clear_faults(self) -> None:
        with self._state.lock:
            self._state.faults.clear()
        if self._down:
            self._come_back()

    def script(self, replies: list[Any]) -> None:
        with self._state.lock:
            self._state.script.extend(copy.deepcopy(replies))

    def _go_down(self) -> None:
        self._down = True
        if self._thread is not None:
            self.stop()
        elif self._server is not None:  # foreground mode: serve_forever restarts later
            self._server.should_exit = True

    def _come_back(self) -> None:
        self._down = False
        if self._thread is None and self._server is None:
            self.start()

    def _outage(self, seconds: float) -> None:
        self._go_down()
        time.sleep(seconds)
        self._come_back()

    # --- what was received ---------------------------------------------------------------------

    @property
    def requests(self) -> list[dict]:
        with self._state.lock:
            return copy.deepcopy(self._state.requests)

    def request_count(self, path: str | None = None) -> int:
        with self._state.lock:
            return sum(1 for r in self._state.requests if path is None or r["path"] == path)

    def reset(self) -> None:
        with self._state.lock:
            self._state.faults.clear()
            self._state.script.clear()
            self._state.requests.clear()
        if self._down:
            self._come_back()


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
