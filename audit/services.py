"""Writes to the audit trail: one record per call, amendments, reviews, the retention purge.

Each record's hash is SHA-256 over the previous record's hash and the record's canonical JSON
(``audit.chain.canonical``). Records are chained in insertion order under a per-schema advisory
lock, so concurrent calls cannot fork the chain.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from audit.chain import canonical, chain_hash
from audit.models import Amendment, AuditRecord, PurgeRecord, Review
from gateway.errors import InvalidRequest, NotFound
from gateway.records import CallRecord

GENESIS = "0" * 64


def _lock_chain() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':audit'))")


def _chain_head() -> tuple[int, str]:
    last = AuditRecord.objects.order_by("-seq").values_list("seq", "hash").first()
    if last is not None:
        return last
    purge = PurgeRecord.objects.order_by("-purged_through_seq").first()
    if purge is not None:
        return purge.purged_through_seq, purge.last_purged_hash
    return 0, GENESIS


def _row(record: CallRecord) -> AuditRecord:
    return AuditRecord(
        call_id=record.call_id,
        request_id=record.request_id,
        created_at=record.created_at,
        api_key_id=record.api_key_id,
        api_key_prefix=record.api_key_prefix,
        staff_user_id=record.staff_user_id,
        staff_username=record.staff_username,
        end_user=record.end_user,
        feature=record.feature,
        mode=record.mode,
        endpoint=record.endpoint,
        alias=record.alias,
        deployment=record.deployment,
        provider=record.provider,
        provider_model=record.provider_model,
        provider_request_id=record.provider_request_id,
        prompt_version_id=record.prompt_version_id,
        prompt_version_label=record.prompt_version_label,
        variant=record.variant,
        retrieved_chunks=[asdict(c) for c in record.retrieved_chunks],
        input_messages=record.input_messages,
        raw_output=record.raw_output,
        parsed_output=record.parsed_output,
        latency_ms=record.latency_ms,
        attempts=[asdict(a) for a in record.attempts],
        input_tokens=record.input_tokens,
        output_tokens=record.output_tokens,
        cost=record.cost,
        cache_hit=record.cache_hit,
        fallback_used=record.fallback_used,
        degraded=record.degraded,
        injection_suspected=record.injection_suspected,
        pii_found=record.pii_found,
        has_pii=bool(record.pii_found),
        flags=list(record.flags),
        status=record.status,
        error_type=record.error_type,
        error_message=record.error_message,
    )


def record_audit_batch(records: list[CallRecord]) -> list[AuditRecord]:
    """Append the calls' audit records, chained in order (a call id already recorded is
    skipped). One lock, one read of the chain's head and one insert for the whole batch."""
    if not records:
        return []
    with transaction.atomic():
        _lock_chain()
        existing = set(
            AuditRecord.objects.filter(call_id__in=[r.call_id for r in records]).values_list(
                "call_id", flat=True
            )
        )
        seq, prev_hash = _chain_head()
        rows, seen = [], set()
        for record in records:
            if record.call_id in existing or record.call_id in seen:
                continue
            seen.add(record.call_id)
            row = _row(record)
            seq += 1
            row.seq = seq
            row.prev_hash = prev_hash
            row.hash = prev_hash = chain_hash(prev_hash, canonical(row))
            rows.append(row)
        AuditRecord.objects.bulk_create(rows)
    return rows


def record_audit(record: CallRecord) -> AuditRecord | None:
    """Append the call's audit record (once per call id; a repeat is ignored)."""
    rows = record_audit_batch([record])
    return rows[0] if rows else None


def _normalise_rating(rating) -> str:
    if rating in (None, ""):
        return ""
    if isinstance(rating, bool):
        raise InvalidRequest("rating must be 'up', 'down' or 1-5.", param="rating")
    if isinstance(rating, int) and 1 <= rating <= 5:
        return str(rating)
    if isinstance(rating, str) and rating.lower() in {"up", "down", "1", "2", "3", "4", "5"}:
        return rating.lower()
    raise InvalidRequest("rating must be 'up', 'down' or 1-5.", param="rating")


def add_feedback(
    *,
    call_id: str,
    rating=None,
    edited_output=None,
    editor_id: str = "",
    editor_name: str = "",
    comment: str = "",
) -> Amendment:
    """Append a human's rating and/or edited output to a call's record (the original stays)."""
    record = AuditRecord.objects.filter(call_id=call_id).first()
    if record is None:
        raise NotFound("No run with this id.", param="id")
    normalised = _normalise_rating(rating)
    if not normalised and edited_output is None and not comment:
        raise InvalidRequest("Send a rating, an edited_output or a comment.", param="rating")
    if edited_output is not None and not editor_id:
        raise InvalidRequest("edited_by is required with edited_output.", param="edited_by")
    return Amendment.objects.create(
        record=record,
        rating=normalised,
        edited_output=edited_output,
        editor_id=editor_id[:256],
        editor_name=editor_name[:256],
        comment=comment,
    )


def mark_reviewed(
    *, record: AuditRecord, reviewer_id: int, reviewer_name: str, comment: str = ""
) -> Review:
    return Review.objects.create(
        record=record, reviewer_id=reviewer_id, reviewer_name=reviewer_name, comment=comment
    )


@dataclass
class PurgeResult:
    records_purged: int
    purged_through_seq: int | None


def purge_expired(*, retention_days: int, now=None) -> PurgeResult:
    """Delete records older than the retention period (with their amendments and reviews) and
    write the purge record that lets the chain verification start after them."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=retention_days)
    with transaction.atomic():
        _lock_chain()
        doomed = AuditRecord.objects.filter(created_at__lt=cutoff)
        last = doomed.order_by("-seq").values_list("seq", "hash").first()
        if last is None:
            return PurgeResult(0, None)
        through_seq, last_hash = last
        # Records are chained in order, so everything up to the newest expired one goes.
        ids = AuditRecord.objects.filter(seq__lte=through_seq)
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL switchboard.audit_purge = 'on'")
        Amendment.objects.filter(record__in=ids).delete()
        Review.objects.filter(record__in=ids).delete()
        count, _ = ids.delete()
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL switchboard.audit_purge = 'off'")
        PurgeRecord.objects.create(
            purged_through_seq=through_seq,
            last_purged_hash=last_hash,
            records_purged=count,
            retention_days=retention_days,
        )
    return PurgeResult(count, through_seq)


def content_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
