"""Checks on what a model answered: PII it introduced, citations it made up, forbidden terms."""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

from gateway.guardrails.pii import PiiFinding, PiiVault, Redactor

_MIN_PHONE_DIGITS = 7


def _canonical(entity_type: str, value: str) -> str:
    """The value with formatting that does not change what it identifies removed."""
    if entity_type == "IP_ADDRESS":
        try:
            return ipaddress.ip_address(value.strip()).compressed
        except ValueError:
            return value.strip()
    if entity_type in ("PHONE_NUMBER", "US_SSN"):
        # Trunk prefixes ("020 …" vs "+44 20 …") are leading zeros once only digits remain.
        return re.sub(r"\D", "", value).lstrip("0")
    if entity_type in ("CREDIT_CARD", "IBAN_CODE"):
        return re.sub(r"[\W_]", "", value).upper()
    return value.strip().casefold()


def _is_known(entity_type: str, value: str, known: set[str]) -> bool:
    canonical = _canonical(entity_type, value)
    if canonical in known:
        return True
    if entity_type == "PHONE_NUMBER" and len(canonical) >= _MIN_PHONE_DIGITS:
        # The same number with or without its country code: "+1 415…" and "(415) …".
        return any(
            k.endswith(canonical) or canonical.endswith(k)
            for k in known
            if len(k) >= _MIN_PHONE_DIGITS
        )
    return False


def _known_values(vault_or_values: PiiVault | Iterable[str], redactor: Redactor) -> set[str]:
    originals = (
        vault_or_values.originals() if isinstance(vault_or_values, PiiVault) else vault_or_values
    )
    # Canonicalised under every entity type, because a value's type as found in the output
    # (a card number re-typed as a phone number, say) is not necessarily its type in the input.
    return {_canonical(t, v) for v in originals for t in redactor.entities}


def _leaked(
    text: str, findings: list[PiiFinding], vault_or_values: PiiVault | Iterable[str], redactor
) -> list[PiiFinding]:
    if not findings:
        return []
    known = _known_values(vault_or_values, redactor)
    return [f for f in findings if not _is_known(f.entity_type, text[f.start : f.end], known)]


def new_pii_in_output(
    output_text: str, vault_or_input_values: PiiVault | Iterable[str], redactor: Redactor
) -> list[PiiFinding]:
    """PII in the (restored) output that the input did not contain.

    The input is given as the call's vault (redact mode) or as the original PII values found in
    it (any mode; a ``PiiFinding`` alone carries offsets, not the value). A value the input held
    counts as known however the model reformatted it (case, spacing, country code).
    """
    return _leaked(output_text, redactor.find(output_text), vault_or_input_values, redactor)


def redact_output(
    output_text: str, vault: PiiVault, redactor: Redactor
) -> tuple[str, list[PiiFinding]]:
    """(the output redacted for storage, PII in it that the input did not contain), from one
    scan of the text.

    Values the input held get the same placeholders as in the stored input, so a reviewer can
    follow them; the call's vault is not changed.
    """
    findings = redactor.find(output_text)
    if not findings:
        return output_text, []
    storage = vault.fork()
    parts, last = [], 0
    for f in findings:
        parts.append(output_text[last : f.start])
        parts.append(storage.placeholder_for(f.entity_type, output_text[f.start : f.end]))
        last = f.end
    parts.append(output_text[last:])
    return "".join(parts), _leaked(output_text, findings, vault, redactor)


def check_citations(cited_ids: list[str], retrieved_ids: set[str]) -> tuple[list[str], list[str]]:
    """(kept, removed): a citation must name a chunk that was actually retrieved.

    Ids are compared as strings (models write ``7`` or ``"7"`` alike); each list keeps the order
    of first citation and names an id once.
    """
    retrieved = {str(r) for r in retrieved_ids}
    kept: list[str] = []
    removed: list[str] = []
    for cited in cited_ids:
        bucket = kept if str(cited) in retrieved else removed
        if cited not in bucket:
            bucket.append(cited)
    return kept, removed


_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"))


@lru_cache(maxsize=1024)
def _term_pattern(term: str) -> re.Pattern[str]:
    words = [re.escape(w) for w in _normalise(term).split()]
    # Whole words only, with any whitespace between the words of a phrase.
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)")


def _normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text).translate(_INVISIBLE).casefold()


def find_forbidden_terms(text: str, terms: list[str]) -> list[str]:
    """The terms (as given, each once) that appear in the text: case-insensitive, whole words,
    NFKC-normalised, any whitespace between the words of a phrase."""
    if not text or not terms:
        return []
    clean = _normalise(text)
    found: list[str] = []
    for term in terms:
        if term and term.strip() and term not in found and _term_pattern(term).search(clean):
            found.append(term)
    return found
