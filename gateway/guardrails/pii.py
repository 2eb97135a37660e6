"""PII found with Microsoft Presidio's recognizers, replaced by stable placeholders before
anything leaves, and restored in what goes back to the caller.

Only recognizers that need no language model are used: e-mail (domain checked against the public
suffix list snapshot tldextract ships), phone (``phonenumbers``, validated against each region's
numbering plan), US SSN, payment card (Luhn), IBAN (mod-97 checksum) and IP address (parsed by
``ipaddress``). They are constructed directly, without an ``AnalyzerEngine``: the engine insists on
an NLP engine, which means loading (or downloading) a spaCy model. Nothing here touches the
network, and a 1 KB input costs well under a millisecond (``scripts/bench_pii.py``).

Person names need a named-entity model and none is available offline here. ``Redactor`` takes
``extra_recognizers``: any Presidio ``EntityRecognizer`` whose ``analyze`` works without NLP
artifacts (a ``PatternRecognizer``, a deny-list, or a model-backed one such as Presidio's
``GLiNERRecognizer``) can add ``PERSON`` or any other entity type without other changes.

Placeholders look like ``<EMAIL_ADDRESS_1>``, ``<PHONE_NUMBER_2>``: the Presidio entity type and a
number, upper case, in angle brackets. Models copy such tokens verbatim (they look like template
slots, contain no spaces and nothing a tokenizer or Markdown renderer rewrites), and the entity
type tells the model what kind of value stood there. Within one call the same value always gets the
same placeholder, and a placeholder-shaped string already present in the input is never issued, so
restoring cannot turn the user's own text into someone's e-mail address.
"""

from __future__ import annotations

import copy
import os
import re
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

DEFAULT_ENTITIES = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "US_SSN",
    "CREDIT_CARD",
    "IBAN_CODE",
    "IP_ADDRESS",
)
# International numbers ("+44 20 …") are found whatever the regions; each national region adds a
# full phonenumbers pass over the text, so the default list is short (scripts/bench_pii.py).
DEFAULT_PHONE_REGIONS = ("US", "GB", "DE")
PHONE_REGIONS_ENV = "SWITCHBOARD_PII_PHONE_REGIONS"

PLACEHOLDER_PATTERN = re.compile(r"<([A-Z][A-Z0-9_]*)_([1-9][0-9]*)>")
_DIGIT = re.compile(r"\d")

PiiMode = Literal["redact", "block", "allow"]


@dataclass(frozen=True)
class PiiFinding:
    """One piece of PII: its Presidio entity type, its span in the text, and the score."""

    entity_type: str
    start: int
    end: int
    score: float


class PiiBlocked(Exception):
    """The tenant's policy refuses input containing PII; ``found`` counts what was found."""

    def __init__(self, found: dict[str, int]) -> None:
        super().__init__("input contains PII: " + ", ".join(sorted(found)))
        self.found = dict(found)

    @property
    def entity_types(self) -> list[str]:
        return sorted(self.found)


class PiiVault:
    """Placeholders ↔ originals for one call; make a new one per call and never share it.

    ``found`` counts occurrences per entity type (the audit record's ``pii_found``), including in
    "allow" mode where nothing is replaced.
    """

    def __init__(self) -> None:
        self._placeholder_by_value: dict[tuple[str, str], str] = {}
        self._value_by_placeholder: dict[str, str] = {}
        self._counters: dict[str, int] = {}
        self._reserved: set[str] = set()
        self.found: dict[str, int] = {}

    def reserve(self, text: str) -> None:
        """Never issue a placeholder that already appears in ``text`` (the caller's own words)."""
        if text and "<" in text:
            self._reserved.update(m.group(0) for m in PLACEHOLDER_PATTERN.finditer(text))

    def count(self, entity_type: str) -> None:
        """Record one occurrence of an entity type without replacing it."""
        self.found[entity_type] = self.found.get(entity_type, 0) + 1

    def placeholder_for(self, entity_type: str, value: str) -> str:
        """The placeholder standing for ``value`` in this call, issued on first use."""
        self.count(entity_type)
        key = (entity_type, value)
        placeholder = self._placeholder_by_value.get(key)
        if placeholder is None:
            number = self._counters.get(entity_type, 0)
            while True:
                number += 1
                placeholder = f"<{entity_type}_{number}>"
                if placeholder not in self._reserved:
                    break
            self._counters[entity_type] = number
            self._placeholder_by_value[key] = placeholder
            self._value_by_placeholder[placeholder] = value
        return placeholder

    def fork(self) -> PiiVault:
        """A vault that issues the same placeholders for the values this one knows, counts
        nothing yet, and leaves this one unchanged when it issues new ones."""
        other = PiiVault()
        other._placeholder_by_value = dict(self._placeholder_by_value)
        other._value_by_placeholder = dict(self._value_by_placeholder)
        other._counters = dict(self._counters)
        other._reserved = set(self._reserved)
        return other

    def is_empty(self) -> bool:
        """True when no placeholder was issued, so restoring is a no-op."""
        return not self._value_by_placeholder

    def originals(self) -> set[str]:
        """The values that were replaced (what the input legitimately contained)."""
        return set(self._value_by_placeholder.values())

    def restore(self, text: str) -> str:
        """Put the originals back wherever the model wrote one of this call's placeholders.

        Only exact placeholders issued in this call are replaced, each as often as it occurs;
        unknown numbers, other spellings and the input's own placeholder-shaped text stay as
        they are.
        """
        if not text or not self._value_by_placeholder or "<" not in text:
            return text
        return PLACEHOLDER_PATTERN.sub(
            lambda m: self._value_by_placeholder.get(m.group(0), m.group(0)), text
        )

    def restore_json(self, obj: Any) -> Any:
        """A copy of parsed JSON with placeholders restored in every string, keys included."""
        if isinstance(obj, str):
            return self.restore(obj)
        if isinstance(obj, list):
            return [self.restore_json(item) for item in obj]
        if isinstance(obj, dict):
            return {self.restore_json(k): self.restore_json(v) for k, v in obj.items()}
        return obj


def _presidio_recognizers(phone_regions: tuple[str, ...]) -> tuple[list[Any], list[Any]]:
    """(pattern recognizers, one phone recognizer per region), adapted to run offline without
    an NLP engine."""
    import tldextract
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
        UsSsnRecognizer,
    )

    class OfflineEmailRecognizer(EmailRecognizer):
        # tldextract's default extractor downloads the public suffix list on first use; the
        # snapshot bundled with the package is enough to tell a domain from "name@host".
        _extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

        def validate_result(self, pattern_text: str) -> bool:
            return self._extract(pattern_text).fqdn != ""

    class ValidatedPhoneRecognizer(PhoneRecognizer):
        # Presidio scores phone matches 0.4 and relies on its context enhancer, which needs an NLP
        # engine, to lift them when "phone" or "call" is nearby. Without one, a number that
        # phonenumbers validated against the region's plan is as sure as the other validated
        # patterns, so it must clear the default threshold.
        SCORE = 0.75

    patterns = [
        OfflineEmailRecognizer(),
        UsSsnRecognizer(),
        CreditCardRecognizer(),
        IbanRecognizer(),
        IpRecognizer(),
    ]
    phones = [ValidatedPhoneRecognizer(supported_regions=(region,)) for region in phone_regions]
    return patterns, phones


def _phone_regions_from_env() -> tuple[str, ...]:
    raw = os.environ.get(PHONE_REGIONS_ENV, "")
    regions = tuple(r.strip().upper() for r in raw.split(",") if r.strip())
    return regions or DEFAULT_PHONE_REGIONS


def _resolve_overlaps(findings: list[PiiFinding]) -> list[PiiFinding]:
    """Non-overlapping findings in text order; on overlap the longer, then higher-scoring, wins."""
    ranked = sorted(findings, key=lambda f: (-(f.end - f.start), -f.score, f.start))
    chosen: list[PiiFinding] = []
    starts: list[int] = []
    for finding in ranked:
        i = bisect_left(starts, finding.start)
        if i > 0 and chosen[i - 1].end > finding.start:
            continue
        if i < len(chosen) and chosen[i].start < finding.end:
            continue
        chosen.insert(i, finding)
        starts.insert(i, finding.start)
    return chosen


def _blank_out(text: str, findings: list[PiiFinding]) -> str:
    """The text with the findings' spans replaced by spaces, offsets unchanged."""
    parts, last = [], 0
    for f in findings:
        parts.append(text[last : f.start])
        parts.append(" " * (f.end - f.start))
        last = f.end
    parts.append(text[last:])
    return "".join(parts)


class Redactor:
    """Finds PII with Presidio's recognizers and replaces it with a call's placeholders.

    Build one per process (``get_redactor``): constructing the recognizers takes most of a second,
    using them afterwards is cheap and thread-safe.
    """

    def __init__(
        self,
        entities: Iterable[str] | None = None,
        score_threshold: float = 0.5,
        extra_recognizers: Iterable[Any] = (),
        phone_regions: Iterable[str] | None = None,
    ) -> None:
        regions = tuple(phone_regions) if phone_regions is not None else DEFAULT_PHONE_REGIONS
        import phonenumbers

        if unknown_regions := set(regions) - phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown phone regions: {', '.join(sorted(unknown_regions))}")
        patterns, phones = _presidio_recognizers(regions)
        patterns.extend(extra_recognizers)
        wanted = set(entities) if entities is not None else set(DEFAULT_ENTITIES)
        supported = {e for r in [*patterns, *phones] for e in r.supported_entities}
        if unknown := wanted - supported:
            raise ValueError(f"no recognizer for entity types: {', '.join(sorted(unknown))}")
        self.entities = frozenset(wanted)
        self.score_threshold = score_threshold
        self._recognizers = [
            (r, [e for e in r.supported_entities if e in wanted])
            for r in patterns
            if wanted & set(r.supported_entities)
        ]
        self._phones = phones if "PHONE_NUMBER" in wanted else []

    def _run(self, recognizer: Any, entities: list[str], text: str) -> list[PiiFinding]:
        return [
            PiiFinding(r.entity_type, r.start, r.end, r.score)
            for r in recognizer.analyze(text, entities, None) or []
            if r.score >= self.score_threshold and r.entity_type in self.entities
        ]

    def find(self, text: str) -> list[PiiFinding]:
        """Non-overlapping findings in text order (longer, then higher-scoring, wins)."""
        if not text:
            return []
        found: list[PiiFinding] = []
        for recognizer, entities in self._recognizers:
            found.extend(self._run(recognizer, entities, text))
        findings = _resolve_overlaps(found)
        if self._phones and _DIGIT.search(text):
            findings = self._find_phones(text, findings)
        return findings

    def _find_phones(self, text: str, findings: list[PiiFinding]) -> list[PiiFinding]:
        # phonenumbers tries every digit run as a number in every region, and card numbers and
        # IBANs are long digit runs: blanking what is already found cuts its cost about fivefold.
        # A number in international form ("+44 …") reads the same in every region, so once found
        # it is blanked for the remaining regions too.
        masked = _blank_out(text, findings) if findings else text
        phones: list[PiiFinding] = []
        for recognizer in self._phones:
            found = self._run(recognizer, ["PHONE_NUMBER"], masked)
            phones.extend(found)
            international = [f for f in found if text.startswith("+", f.start)]
            if international:
                masked = _blank_out(masked, _resolve_overlaps(international))
        return _resolve_overlaps(findings + phones) if phones else findings

    def redact(self, text: str, vault: PiiVault) -> str:
        """The text with each finding replaced by the vault's placeholder for its value."""
        vault.reserve(text)
        findings = self.find(text)
        if not findings:
            return text
        parts, last = [], 0
        for f in findings:
            parts.append(text[last : f.start])
            parts.append(vault.placeholder_for(f.entity_type, text[f.start : f.end]))
            last = f.end
        parts.append(text[last:])
        return "".join(parts)


_redactor: Redactor | None = None
_redactor_lock = threading.Lock()


def get_redactor() -> Redactor:
    """The process-wide redactor, built (and warmed up) once.

    Phone regions come from ``SWITCHBOARD_PII_PHONE_REGIONS`` (comma-separated, default US,GB,DE).
    """
    global _redactor
    if _redactor is None:
        with _redactor_lock:
            if _redactor is None:
                redactor = Redactor(phone_regions=_phone_regions_from_env())
                # Presidio compiles its patterns and tldextract loads its snapshot on first use.
                redactor.find("warm-up a@example.com +1 415-555-0132 4111 1111 1111 1111")
                _redactor = redactor
    return _redactor


def _map_message_texts(message: dict, fn: Callable[[str], str]) -> dict:
    """A deep copy of one chat message with ``fn`` applied to every text it carries."""
    out = copy.deepcopy(message)
    content = out.get("content")
    if isinstance(content, str):
        out["content"] = fn(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                part["text"] = fn(part["text"])
    for call in out.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            function["arguments"] = fn(function["arguments"])
    return out


def message_texts(messages: list[dict]) -> list[str]:
    """Every text in OpenAI-shaped messages that the PII guard looks at."""
    texts: list[str] = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(
                p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
            )
        for call in message.get("tool_calls") or []:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                texts.append(function["arguments"])
    return texts


def redact_messages(messages: list[dict], redactor: Redactor, vault: PiiVault) -> list[dict]:
    """Redacted copies of OpenAI-shaped chat messages; the originals are left untouched.

    ``content`` may be a string or a list of parts (only ``text`` parts change); tool-call
    arguments are redacted too.
    """
    for text in message_texts(messages):
        vault.reserve(text)
    return [_map_message_texts(m, lambda t: redactor.redact(t, vault)) for m in messages]


def apply_pii_policy(
    messages: list[dict], mode: PiiMode, redactor: Redactor
) -> tuple[list[dict], PiiVault]:
    """What goes to the provider under the tenant's PII policy, and the call's vault.

    - ``redact``: copies with placeholders; the vault restores the answer.
    - ``block``: raises ``PiiBlocked`` (with the entity types found) if there is any PII.
    - ``allow``: copies of the messages as they are; the vault only counts what was found, so
      the audit can flag it, and has nothing to restore.
    """
    vault = PiiVault()
    if mode == "redact":
        return redact_messages(messages, redactor, vault), vault
    if mode not in ("block", "allow"):
        raise ValueError(f"unknown PII mode {mode!r}")
    for text in message_texts(messages):
        for finding in redactor.find(text):
            vault.count(finding.entity_type)
    if mode == "block" and vault.found:
        raise PiiBlocked(vault.found)
    return [copy.deepcopy(m) for m in messages], vault


def redact_for_storage(text: str) -> str:
    """Text for audit records and logs: placeholders instead of values, nothing to restore."""
    if not text:
        return text
    return get_redactor().redact(text, PiiVault())
