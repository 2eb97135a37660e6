"""PII found with Microsoft Presidio's pattern recognizers, replaced by stable placeholders
before anything leaves, and restored in what goes back to the caller.

Only pattern recognizers are used (e-mail, phone, US SSN, payment card with Luhn check, IBAN with
checksum, IP address): they need no language model, so nothing is downloaded and a 1 KB input
costs a fraction of a millisecond (BENCHMARKS.md). Person names need an NER model; none is
available offline here, so ``Redactor`` takes extra recognizers (any Presidio ``EntityRecognizer``)
for installations that ship one.

Placeholders look like ``<EMAIL_ADDRESS_1>``: upper-case, numbered per entity type, stable within
a call (the same value always gets the same placeholder), and unlikely to be rewritten by a model.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

DEFAULT_ENTITIES = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "US_SSN",
    "CREDIT_CARD",
    "IBAN_CODE",
    "IP_ADDRESS",
)
# Numbers written in international form (+44 …) are found whatever the regions; each national
# region added costs about 1 ms per KB of digit-heavy text (see BENCHMARKS.md).
PHONE_REGIONS = tuple(
    r.strip().upper()
    for r in os.environ.get("SWITCHBOARD_PII_PHONE_REGIONS", "US,GB,DE").split(",")
    if r.strip()
)
_PLACEHOLDER = re.compile(r"<([A-Z][A-Z_]*?)_(\d+)>")


@dataclass(frozen=True)
class PiiFinding:
    entity_type: str
    start: int
    end: int
    score: float


class PiiBlocked(Exception):
    """The tenant's policy refuses input containing PII; ``found`` counts what was found."""

    def __init__(self, found: dict[str, int]) -> None:
        super().__init__("input contains PII: " + ", ".join(sorted(found)))
        self.found = found


@dataclass
class PiiVault:
    """Placeholders ↔ originals for one call."""

    _by_value: dict[tuple[str, str], str] = field(default_factory=dict)
    _by_placeholder: dict[str, str] = field(default_factory=dict)
    _counters: dict[str, int] = field(default_factory=dict)
    found: dict[str, int] = field(default_factory=dict)

    def placeholder_for(self, entity_type: str, value: str) -> str:
        self.found[entity_type] = self.found.get(entity_type, 0) + 1
        key = (entity_type, value)
        if key not in self._by_value:
            number = self._counters.get(entity_type, 0) + 1
            self._counters[entity_type] = number
            placeholder = f"<{entity_type}_{number}>"
            self._by_value[key] = placeholder
            self._by_placeholder[placeholder] = value
        return self._by_value[key]

    def is_empty(self) -> bool:
        return not self._by_placeholder

    def originals(self) -> set[str]:
        return set(self._by_placeholder.values())

    def restore(self, text: str) -> str:
        if not self._by_placeholder or not text or "<" not in text:
            return text
        return _PLACEHOLDER.sub(lambda m: self._by_placeholder.get(m.group(0), m.group(0)), text)

    def restore_json(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.restore(value)
        if isinstance(value, list):
            return [self.restore_json(v) for v in value]
        if isinstance(value, dict):
            return {k: self.restore_json(v) for k, v in value.items()}
        return value


def _offline_tldextract() -> None:
    # Presidio's e-mail recognizer validates domains with tldextract, whose default extractor
    # downloads the public suffix list on first use; use the snapshot the package ships instead.
    import tldextract.tldextract as tld

    if getattr(tld.TLD_EXTRACTOR, "suffix_list_urls", ()) != ():
        tld.TLD_EXTRACTOR = tld.TLDExtract(suffix_list_urls=(), cache_dir=None)


class Redactor:
    def __init__(
        self,
        entities: Iterable[str] | None = None,
        score_threshold: float = 0.4,
        extra_recognizers: Iterable[Any] = (),
    ) -> None:
        _offline_tldextract()
        from presidio_analyzer.predefined_recognizers import (
            CreditCardRecognizer,
            EmailRecognizer,
            IbanRecognizer,
            IpRecognizer,
            PhoneRecognizer,
            UsSsnRecognizer,
        )

        wanted = set(entities or DEFAULT_ENTITIES)
        candidates = [
            EmailRecognizer(),
            UsSsnRecognizer(),
            CreditCardRecognizer(),
            IbanRecognizer(),
            IpRecognizer(),
            *extra_recognizers,
            PhoneRecognizer(supported_regions=PHONE_REGIONS),
        ]
        self._recognizers = [r for r in candidates if wanted & set(r.supported_entities)]
        self.entities = wanted
        self.score_threshold = score_threshold

    def find(self, text: str) -> list[PiiFinding]:
        """Non-overlapping findings, longest (then highest-scoring) first wins."""
        if not text:
            return []
        raw: list[PiiFinding] = []
        for recognizer in self._recognizers:
            entities = [e for e in recognizer.supported_entities if e in self.entities]
            for result in recognizer.analyze(text, entities, None) or []:
                if result.score >= self.score_threshold:
                    raw.append(
                        PiiFinding(result.entity_type, result.start, result.end, result.score)
                    )
        raw.sort(key=lambda f: (-(f.end - f.start), -f.score, f.start))
        chosen: list[PiiFinding] = []
        for finding in raw:
            if all(finding.end <= c.start or finding.start >= c.end for c in chosen):
                chosen.append(finding)
        return sorted(chosen, key=lambda f: f.start)

    def redact(self, text: str, vault: PiiVault) -> str:
        findings = self.find(text)
        if not findings:
            return text
        out, last = [], 0
        for f in findings:
            out.append(text[last : f.start])
            out.append(vault.placeholder_for(f.entity_type, text[f.start : f.end]))
            last = f.end
        out.append(text[last:])
        return "".join(out)


_redactor: Redactor | None = None
_lock = threading.Lock()


def get_redactor() -> Redactor:
    """The process-wide redactor (building Presidio's recognizers takes a moment)."""
    global _redactor
    if _redactor is None:
        with _lock:
            if _redactor is None:
                _redactor = Redactor()
    return _redactor


def _map_text(content: Any, fn) -> Any:
    if isinstance(content, str):
        return fn(content)
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                part = {**part, "text": fn(part["text"])}
            parts.append(part)
        return parts
    return content


def redact_messages(messages: list[dict], redactor: Redactor, vault: PiiVault) -> list[dict]:
    """Redacted copies of OpenAI-shaped messages (content as a string or a list of parts)."""
    return [
        {**m, "content": _map_text(m.get("content"), lambda t: redactor.redact(t, vault))}
        if m.get("content") is not None
        else dict(m)
        for m in messages
    ]


def apply_pii_policy(
    messages: list[dict], mode: Literal["redact", "block", "allow"], redactor: Redactor
) -> tuple[list[dict], PiiVault]:
    """What goes to the provider under the tenant's policy, and the call's vault."""
    vault = PiiVault()
    redacted = redact_messages(messages, redactor, vault)
    if mode == "redact":
        return redacted, vault
    if mode == "block" and vault.found:
        raise PiiBlocked(dict(vault.found))
    allowed = PiiVault()
    allowed.found = dict(vault.found)  # nothing to restore: the originals went out as they were
    return [dict(m) for m in messages], allowed


def redact_for_storage(text: str) -> str:
    """Text for audit records and logs: placeholders instead of values."""
    if not text:
        return text
    return get_redactor().redact(text, PiiVault())
