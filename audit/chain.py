"""The audit hash chain: canonical serialisation of a record and its verification."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal

# Every field that matters to an auditor is covered; the chain fields themselves are not.
CHAINED_FIELDS = (
    "seq",
    "call_id",
    "request_id",
    "created_at",
    "api_key_id",
    "api_key_prefix",
    "staff_user_id",
    "staff_username",
    "end_user",
    "feature",
    "mode",
    "endpoint",
    "alias",
    "deployment",
    "provider",
    "provider_model",
    "provider_request_id",
    "prompt_version_id",
    "prompt_version_label",
    "variant",
    "retrieved_chunks",
    "input_messages",
    "raw_output",
    "parsed_output",
    "latency_ms",
    "attempts",
    "input_tokens",
    "output_tokens",
    "cost",
    "cache_hit",
    "fallback_used",
    "degraded",
    "injection_suspected",
    "pii_found",
    "has_pii",
    "flags",
    "status",
    "error_type",
    "error_message",
)


def _plain(value):
    if isinstance(value, Decimal):
        return format(value.quantize(Decimal("0.00000001")), "f")
    if hasattr(value, "isoformat"):
        return value.isoformat(timespec="microseconds")
    return value


def canonical(row) -> str:
    data = {name: _plain(getattr(row, name)) for name in CHAINED_FIELDS}
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def chain_hash(prev_hash: str, canonical_text: str) -> str:
    return hashlib.sha256((prev_hash + canonical_text).encode()).hexdigest()


@dataclass
class ChainReport:
    ok: bool
    records_checked: int
    first_broken_seq: int | None = None
    first_broken_id: int | None = None
    reason: str = ""


def verify_chain(batch_size: int = 2000) -> ChainReport:
    """Walk the current schema's records in order; name the first link that does not hold."""
    from audit.models import AuditRecord, PurgeRecord
    from audit.services import GENESIS

    purge = PurgeRecord.objects.order_by("-purged_through_seq").first()
    expected_prev = purge.last_purged_hash if purge else GENESIS
    expected_seq = (purge.purged_through_seq if purge else 0) + 1
    checked = 0
    rows = AuditRecord.objects.order_by("seq").iterator(chunk_size=batch_size)
    for row in rows:
        checked += 1
        if row.seq != expected_seq:
            return ChainReport(
                False,
                checked,
                row.seq,
                row.id,
                f"expected record #{expected_seq}, found #{row.seq} (a record is missing)",
            )
        if row.prev_hash != expected_prev:
            return ChainReport(
                False,
                checked,
                row.seq,
                row.id,
                "its previous-hash does not match the record before it",
            )
        if chain_hash(row.prev_hash, canonical(row)) != row.hash:
            return ChainReport(
                False,
                checked,
                row.seq,
                row.id,
                "its content does not match its hash (the record was altered)",
            )
        expected_prev = row.hash
        expected_seq += 1
    return ChainReport(True, checked)
