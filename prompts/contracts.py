"""Output contracts: what a feature's answer must look like, enforced twice — by the provider
where it can (OpenAI strict json_schema; Anthropic forced tool use) and here, always, with the
``jsonschema`` library and the label set."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from gateway.errors import InvalidRequest

KINDS = ("text", "json_schema", "classification")


@dataclass(frozen=True)
class OutputContract:
    kind: str = "text"
    schema: dict = field(default_factory=dict)
    labels: tuple[str, ...] = ()
    name: str = "answer"

    @classmethod
    def from_dict(cls, data: dict | None, name: str = "answer") -> OutputContract:
        data = data or {}
        kind = data.get("kind", "text")
        if kind not in KINDS:
            raise InvalidRequest(f"Unknown contract kind {kind!r}.", param="contract.kind")
        contract = cls(
            kind=kind,
            schema=data.get("schema") or {},
            labels=tuple(data.get("labels") or ()),
            name=name[:64] or "answer",
        )
        contract.check()
        return contract

    def to_dict(self) -> dict:
        data: dict[str, Any] = {"kind": self.kind}
        if self.kind == "json_schema":
            data["schema"] = self.schema
        if self.kind == "classification":
            data["labels"] = list(self.labels)
        return data

    def check(self) -> None:
        """A contract that can never be satisfied is refused when it is saved."""
        if self.kind == "json_schema":
            if self.schema.get("type") != "object":
                raise InvalidRequest(
                    "A JSON contract's schema must describe an object.", param="contract.schema"
                )
            try:
                Draft202012Validator.check_schema(self.schema)
            except SchemaError as exc:
                raise InvalidRequest(
                    f"Invalid JSON Schema: {exc.message}", param="contract.schema"
                ) from None
        if self.kind == "classification" and len(self.labels) < 2:
            raise InvalidRequest(
                "A classification needs at least two labels.", param="contract.labels"
            )

    def effective_schema(self) -> dict | None:
        if self.kind == "json_schema":
            return self.schema
        if self.kind == "classification":
            return {
                "type": "object",
                "additionalProperties": False,
                "required": ["label"],
                "properties": {"label": {"type": "string", "enum": list(self.labels)}},
            }
        return None

    def response_format(self) -> dict | None:
        schema = self.effective_schema()
        if schema is None:
            return None
        return {
            "type": "json_schema",
            "json_schema": {
                "name": self.name.replace("-", "_"),
                "schema": schema,
                "strict": _strict_compatible(schema),
            },
        }

    def validate(self, text: str) -> tuple[Any, str | None]:
        """(parsed output, None) when valid; (None, what is wrong) otherwise."""
        if self.kind == "text":
            return (text, None) if text.strip() else (None, "the answer is empty")
        try:
            value = json.loads(text)
        except ValueError as exc:
            return None, f"the answer is not valid JSON ({exc.msg})"
        validator = Draft202012Validator(self.effective_schema())
        problems = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
        if problems:
            first = problems[0]
            where = "/".join(str(p) for p in first.path) or "the answer"
            if self.kind == "classification" and list(first.path) == ["label"]:
                return None, (
                    f"label {value.get('label')!r} is not one of {', '.join(self.labels)}"
                )
            return None, f"{where}: {first.message}"
        return value, None


def _strict_compatible(schema: Any) -> bool:
    """OpenAI's strict mode needs every object closed and every property required."""
    if isinstance(schema, dict):
        if schema.get("type") == "object" or "properties" in schema:
            props = schema.get("properties", {})
            if schema.get("additionalProperties") is not False:
                return False
            if set(schema.get("required", [])) != set(props):
                return False
        return all(_strict_compatible(v) for v in schema.values())
    if isinstance(schema, list):
        return all(_strict_compatible(v) for v in schema)
    return True
