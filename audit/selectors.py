"""Reads of the audit trail: filtered, keyset-paginated lists and streamed exports."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from audit.models import Amendment, AuditRecord

FLAGS = ("modified", "degraded", "fallback", "injection", "pii", "cache")
PAGE_SIZE = 50
EXPORT_FIELDS = (
    "seq",
    "call_id",
    "request_id",
    "created_at",
    "api_key_prefix",
    "staff_username",
    "end_user",
    "feature",
    "mode",
    "alias",
    "deployment",
    "provider",
    "provider_model",
    "prompt_version_label",
    "variant",
    "status",
    "error_type",
    "input_tokens",
    "output_tokens",
    "cost",
    "cache_hit",
    "fallback_used",
    "degraded",
    "injection_suspected",
    "has_pii",
    "latency_ms",
    "retrieved_chunks",
    "input_messages",
    "raw_output",
    "parsed_output",
    "flags",
    "hash",
)


@dataclass
class AuditFilters:
    date_from: date | None = None
    date_to: date | None = None
    feature: str = ""
    end_user: str = ""
    alias: str = ""
    status: str = ""
    flags: tuple[str, ...] = ()


def _day(d: date) -> datetime:
    return datetime.combine(d, time.min).replace(tzinfo=timezone.get_fixed_timezone(0))


def filtered(filters: AuditFilters) -> QuerySet[AuditRecord]:
    rows = AuditRecord.objects.all()
    if filters.date_from:
        rows = rows.filter(created_at__gte=_day(filters.date_from))
    if filters.date_to:
        rows = rows.filter(created_at__lt=_day(filters.date_to + timedelta(days=1)))
    for name in ("feature", "end_user", "alias", "status"):
        value = getattr(filters, name)
        if value:
            rows = rows.filter(**{name: value})
    flags = set(filters.flags)
    if "modified" in flags:
        rows = rows.filter(
            Exists(Amendment.objects.filter(record=OuterRef("pk"), edited_output__isnull=False))
        )
    if "degraded" in flags:
        rows = rows.filter(degraded=True)
    if "fallback" in flags:
        rows = rows.filter(fallback_used=True)
    if "injection" in flags:
        rows = rows.filter(injection_suspected=True)
    if "pii" in flags:
        rows = rows.filter(has_pii=True)
    if "cache" in flags:
        rows = rows.filter(cache_hit=True)
    return rows


def page(
    filters: AuditFilters, *, before_seq: int | None = None, size: int = PAGE_SIZE
) -> tuple[list[AuditRecord], int | None]:
    """One page, newest first, and the cursor of the next one (keyset on seq: page N costs the
    same as page 1, and no COUNT over the table)."""
    rows = filtered(filters).defer(
        "input_messages", "raw_output", "parsed_output", "retrieved_chunks", "attempts"
    )
    if before_seq is not None:
        rows = rows.filter(seq__lt=before_seq)
    items = list(
        rows.order_by("-seq")[: size + 1].annotate(
            was_modified=Exists(
                Amendment.objects.filter(record=OuterRef("pk"), edited_output__isnull=False)
            )
        )
    )
    next_cursor = items[size - 1].seq if len(items) > size else None
    return items[:size], next_cursor


def _plain(value):
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def export_rows(filters: AuditFilters, chunk_size: int = 2000) -> Iterator[dict]:
    rows = filtered(filters).order_by("seq").values(*EXPORT_FIELDS)
    yield from rows.iterator(chunk_size=chunk_size)


def export_csv(filters: AuditFilters) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_FIELDS)
    for row in export_rows(filters):
        writer.writerow([_plain(row[name]) for name in EXPORT_FIELDS])
        if buffer.tell() > 64_000:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def export_jsonl(filters: AuditFilters) -> Iterator[str]:
    lines: list[str] = []
    for row in export_rows(filters):
        lines.append(json.dumps(row, ensure_ascii=False, default=str))
        if len(lines) >= 500:
            yield "\n".join(lines) + "\n"
            lines = []
    if lines:
        yield "\n".join(lines) + "\n"
