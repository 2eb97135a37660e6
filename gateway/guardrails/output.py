"""Checks on what a model answered: PII it invented, citations it made up, forbidden terms."""

from __future__ import annotations

import re

from gateway.guardrails.pii import PiiFinding, PiiVault, Redactor


def new_pii_in_output(output_text: str, vault: PiiVault, redactor: Redactor) -> list[PiiFinding]:
    """PII in the (restored) output that the input did not contain."""
    known = vault.originals()
    return [f for f in redactor.find(output_text) if output_text[f.start : f.end] not in known]


def redact_output(
    output_text: str, vault: PiiVault, redactor: Redactor
) -> tuple[str, list[PiiFinding]]:
    """(the output redacted for storage, PII in it that the input did not contain), from one
    scan of the text."""
    findings = redactor.find(output_text)
    if not findings:
        return output_text, []
    known = vault.originals()
    fresh = PiiVault()
    parts, last = [], 0
    for f in findings:
        parts.append(output_text[last : f.start])
        parts.append(fresh.placeholder_for(f.entity_type, output_text[f.start : f.end]))
        last = f.end
    parts.append(output_text[last:])
    leaked = [f for f in findings if output_text[f.start : f.end] not in known]
    return "".join(parts), leaked


def check_citations(cited_ids: list[str], retrieved_ids: set[str]) -> tuple[list[str], list[str]]:
    """(kept, removed): a citation must name a chunk that was actually retrieved."""
    kept = [c for c in cited_ids if str(c) in retrieved_ids]
    removed = [c for c in cited_ids if str(c) not in retrieved_ids]
    return kept, removed


def find_forbidden_terms(text: str, terms: list[str]) -> list[str]:
    """Terms (case-insensitive, whole words) from the tenant's list that appear in the text."""
    found = []
    for term in terms:
        if term and re.search(r"(?<!\w)" + re.escape(term) + r"(?!\w)", text, re.IGNORECASE):
            found.append(term)
    return found
