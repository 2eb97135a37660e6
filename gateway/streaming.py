"""Restoring PII placeholders in a stream, where a placeholder may be split across chunks."""

from __future__ import annotations

from collections.abc import Callable

# Placeholders look like "<EMAIL_ADDRESS_1>": short, starting with "<" and ending with ">".
_MAX_PLACEHOLDER = 48


class StreamRestorer:
    """Feed text deltas in, get restored text out; holds back only a possible placeholder prefix."""

    def __init__(self, restore: Callable[[str], str]) -> None:
        self._restore = restore
        self._pending = ""

    def feed(self, delta: str) -> str:
        text = self._pending + delta
        cut = text.rfind("<")
        if cut != -1 and ">" not in text[cut:] and len(text) - cut <= _MAX_PLACEHOLDER:
            self._pending = text[cut:]
            text = text[:cut]
        else:
            self._pending = ""
        return self._restore(text) if text else ""

    def flush(self) -> str:
        text, self._pending = self._pending, ""
        return self._restore(text) if text else ""
