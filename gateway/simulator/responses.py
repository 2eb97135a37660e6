"""What the simulator answers: deterministic text, JSON valid against a requested schema,
hash-derived embeddings, token counts. Pure functions, no I/O."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import struct
from typing import Any


def count_tokens(text: str) -> int:
    """A deterministic approximation (about four characters a token)."""
    return max(1, (len(text) + 3) // 4) if text else 0


def message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict):
                if isinstance(part.get("text"), str):
                    parts.append(part["text"])
                elif isinstance(part.get("content"), str | list):
                    parts.append(message_text(part["content"]))
        return " ".join(parts)
    return ""


def default_text(messages: list[dict]) -> str:
    last_user = ""
    for message in messages:
        if message.get("role") == "user":
            last_user = message_text(message.get("content"))
    snippet = " ".join(last_user.split())[:60]
    return f"Simulated answer: {snippet}"


def instance_for_schema(schema: dict, defs: dict | None = None, depth: int = 0) -> Any:
    """A small JSON document valid against ``schema`` (the subset structured outputs use)."""
    defs = (
        defs if defs is not None else {**schema.get("$defs", {}), **schema.get("definitions", {})}
    )
    if depth > 8:
        return None
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return instance_for_schema(defs.get(name, {}), defs, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return instance_for_schema(schema[key][0], defs, depth + 1)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        non_null = [k for k in kind if k != "null"]
        kind = non_null[0] if non_null else "null"
    if kind == "object":
        props = schema.get("properties", {})
        return {name: instance_for_schema(sub, defs, depth + 1) for name, sub in props.items()}
    if kind == "array":
        count = max(1, int(schema.get("minItems", 1)))
        return [instance_for_schema(schema.get("items", {}), defs, depth + 1) for _ in range(count)]
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        low = schema.get("minimum", 0)
        high = schema.get("maximum", 1)
        return (low + high) / 2
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    text = "sample"
    if schema.get("format") == "date":
        text = "2026-01-31"
    elif schema.get("format") == "date-time":
        text = "2026-01-31T12:00:00Z"
    elif schema.get("format") == "email":
        text = "someone@example.com"
    min_length = int(schema.get("minLength", 0))
    return text + "x" * max(0, min_length - len(text))


def embedding_for(text: str, dimensions: int) -> list[float]:
    """A unit vector derived from the text's hash (equal texts, equal vectors)."""
    values: list[float] = []
    counter = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend(v / 2**31 - 1 for v in struct.unpack("<8I", digest))
        counter += 1
    values = values[:dimensions]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


def base64_floats(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def json_answer(response_format: dict | None) -> str | None:
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {}
        return json.dumps(instance_for_schema(schema))
    if kind == "json_object":
        return json.dumps({"answer": "simulated"})
    return None
