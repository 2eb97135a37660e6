"""Request bodies of the OpenAI-compatible API, validated with pydantic.

Validation is strict about what we act on and lenient about what we pass by (unknown fields of the
OpenAI request shape are ignored, as OpenAI-compatible servers do). Every failure becomes a 400
naming the offending parameter, never a 500.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway.errors import InvalidRequest

MAX_MESSAGES = 1000


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class JsonSchemaSpec(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: Annotated[str, Field(min_length=1, max_length=64)]
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None
    description: str | None = None


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatCompletionBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: Annotated[str, Field(min_length=1, max_length=200)]
    messages: Annotated[list[ChatMessage], Field(min_length=1, max_length=MAX_MESSAGES)]
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(gt=0, le=1)] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    n: Annotated[int, Field(ge=1, le=1)] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    response_format: ResponseFormat | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    user: Annotated[str, Field(max_length=256)] | None = None
    seed: int | None = None
    metadata: dict[str, str] | None = None

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value):
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value


class EmbeddingsBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: Annotated[str, Field(min_length=1, max_length=200)]
    input: str | Annotated[list[str], Field(min_length=1, max_length=2048)]
    dimensions: Annotated[int, Field(ge=1, le=8192)] | None = None
    encoding_format: Literal["float", "base64"] | None = None
    user: Annotated[str, Field(max_length=256)] | None = None

    @field_validator("input")
    @classmethod
    def _no_empty_strings(cls, value):
        items = [value] if isinstance(value, str) else value
        if any(not item for item in items):
            raise ValueError("input must not contain empty strings")
        return value


def _param_of(error: dict) -> str:
    parts = [str(p) for p in error.get("loc", ()) if p not in {"str", "list[str]"}]
    # pydantic names union branches in loc (e.g. "list[ContentPart]"); drop the type names
    parts = [p for p in parts if "[" not in p and p not in {"function-after", "constrained-str"}]
    return ".".join(parts)


def parse_body(raw: bytes, model: type[BaseModel]) -> Any:
    """Parse and validate a JSON request body, or raise InvalidRequest naming the parameter."""
    if not raw:
        raise InvalidRequest("The request body is empty; send a JSON object.")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(
            f"The request body is not valid JSON: {exc}", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    if b"\\ud" in raw or b"\\uD" in raw:
        # JSON allows escaped lone surrogates; they are not text and cannot be sent on or stored.
        try:
            json.dumps(data, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise InvalidRequest(
                "The request body contains invalid Unicode (a lone surrogate).", code="invalid_json"
            ) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        param = _param_of(first)
        raise InvalidRequest(f"{param or 'body'}: {first['msg']}", param=param or None) from None
