"""Rendering a prompt version into chat messages.

The template language is deliberately tiny: ``{{ name }}`` substitutes a declared variable, and
nothing else is evaluated, so a template can never run code. Roles stay separate: the system
message holds only the version's instructions (it may not reference input variables), few-shot
examples are user/assistant pairs, retrieved context is its own delimited message, and the
user's input appears only in the user role, inside <user_input> delimiters.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from gateway.errors import InvalidRequest
from gateway.guardrails.injection import wrap_user_input

_VARIABLE = re.compile(r"{{\s*([A-Za-z_][A-Za-z0-9_]*)\s*}}")
MAX_VALUE_CHARS = 100_000


def variables_in(template: str) -> set[str]:
    return set(_VARIABLE.findall(template or ""))


def check_templates(
    *, system: str, user_template: str, context_template: str, variables: list[str]
) -> None:
    """Refuse a version whose templates do not fit its declared variables."""
    if variables_in(system):
        raise InvalidRequest(
            "The system instructions may not contain input variables: user "
            "input never goes into the system prompt.",
            param="system",
        )
    declared = set(variables)
    for name in variables_in(user_template) - declared:
        raise InvalidRequest(
            f"The user template uses an undeclared variable {name!r}.", param="user_template"
        )
    if variables_in(context_template) - {"context"}:
        raise InvalidRequest(
            "The context template may only use {{ context }}.", param="context_template"
        )


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def substitute(template: str, values: dict[str, str]) -> str:
    return _VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def check_input(variables: list[str], data: Any) -> dict[str, str]:
    """The run's input: an object with exactly the declared variables (400 naming the first
    missing or unexpected one)."""
    if not isinstance(data, dict):
        raise InvalidRequest("input must be an object of the feature's variables.", param="input")
    for name in variables:
        if name not in data or data[name] in (None, ""):
            raise InvalidRequest(
                f"Missing variable {name!r}.", param=f"input.{name}", code="missing_variable"
            )
    for name in data:
        if name not in variables:
            raise InvalidRequest(
                f"Unexpected variable {name!r}; this feature takes "
                f"{', '.join(variables) or 'none'}.",
                param=f"input.{name}",
                code="unexpected_variable",
            )
    values = {name: _text(data[name]) for name in variables}
    for name, value in values.items():
        if len(value) > MAX_VALUE_CHARS:
            raise InvalidRequest(f"Variable {name!r} is too long.", param=f"input.{name}")
    return values


@dataclass
class ContextChunk:
    id: str
    text: str
    title: str = ""


def user_turn(version, data: dict) -> str:
    """The run's user turn as the model sees it, without the delimiters (what a conversation
    stores as the user's message)."""
    return substitute(version.user_template, check_input(version.variables, data))


def render_messages(
    version, data: dict, *, context: list[ContextChunk] | None = None
) -> list[dict]:
    values = check_input(version.variables, data)
    messages: list[dict] = [{"role": "system", "content": version.system}]
    for example in version.few_shot or []:
        example_values = {k: _text(v) for k, v in (example.get("input") or {}).items()}
        messages.append(
            {
                "role": "user",
                "content": wrap_user_input(substitute(version.user_template, example_values)),
            }
        )
        messages.append({"role": "assistant", "content": _text(example.get("output", ""))})
    if context is not None and version.context_template:
        documents = (
            "\n\n".join(
                f'<document id="{c.id}" title="{c.title}">\n{c.text}\n</document>' for c in context
            )
            or "(no documents matched)"
        )
        messages.append(
            {
                "role": "user",
                "content": substitute(version.context_template, {"context": documents}),
            }
        )
    messages.append(
        {"role": "user", "content": wrap_user_input(substitute(version.user_template, values))}
    )
    return messages
