"""The compliance console: the audit list with filters, a record's detail with its amendments
and the AI-vs-human diff, reviews, the chain check, and streamed exports. Admins and compliance
reviewers only."""

from __future__ import annotations

import difflib
import json
from datetime import date

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from django_tenants.utils import schema_context

from audit import selectors, services
from audit.chain import verify_chain
from audit.models import AuditRecord
from tenants.decorators import REVIEW_ROLES, tenant_view


def _filters(request) -> tuple[selectors.AuditFilters, dict]:
    params = request.GET

    def day(name: str) -> date | None:
        try:
            return date.fromisoformat(params.get(name, ""))
        except ValueError:
            return None

    filters = selectors.AuditFilters(
        date_from=day("from"),
        date_to=day("to"),
        feature=params.get("feature", "")[:100],
        end_user=params.get("end_user", "")[:256],
        alias=params.get("alias", "")[:200],
        status=params.get("status", "")[:12],
        flags=tuple(f for f in params.getlist("flag") if f in selectors.FLAGS),
    )
    query = {k: v for k, v in params.items() if k not in {"before"}}
    return filters, query


@tenant_view(*REVIEW_ROLES)
def record_list(request):
    filters, query = _filters(request)
    try:
        before = int(request.GET["before"]) if request.GET.get("before") else None
    except ValueError:
        before = None
    rows, next_cursor = selectors.page(filters, before_seq=before)
    context = {
        "rows": rows,
        "next_cursor": next_cursor,
        "filters": filters,
        "flag_names": selectors.FLAGS,
        "query": "&".join(f"{k}={v}" for k, v in query.items() if v)
        + "".join(f"&flag={f}" for f in filters.flags),
        "features": AuditRecord.objects.values_list("feature", flat=True).distinct()[:100],
    }
    template = "audit/_rows.html" if request.htmx else "audit/record_list.html"
    return render(request, template, context)


def _diff(original: str, edited) -> str:
    edited_text = edited if isinstance(edited, str) else json.dumps(edited, indent=2)
    try:
        original_text = (
            json.dumps(json.loads(original), indent=2) if not isinstance(edited, str) else original
        )
    except ValueError:
        original_text = original
    return difflib.HtmlDiff(wrapcolumn=80).make_table(
        original_text.splitlines(), edited_text.splitlines(), "AI output", "Used by a human"
    )


@tenant_view(*REVIEW_ROLES)
def record_detail(request, record_id: int):
    record = get_object_or_404(AuditRecord, pk=record_id)
    amendments = list(record.amendments.all())
    diffs = [
        (a, _diff(record.raw_output, a.edited_output))
        for a in amendments
        if a.edited_output is not None
    ]
    context = {
        "record": record,
        "amendments": amendments,
        "diffs": diffs,
        "reviews": record.reviews.all(),
        "input_json": json.dumps(record.input_messages, indent=2, ensure_ascii=False),
        "parsed_json": json.dumps(record.parsed_output, indent=2, ensure_ascii=False),
        "attempts_json": json.dumps(record.attempts, indent=2),
    }
    return render(request, "audit/record_detail.html", context)


@tenant_view(*REVIEW_ROLES)
@require_POST
def review(request, record_id: int):
    record = get_object_or_404(AuditRecord, pk=record_id)
    services.mark_reviewed(
        record=record,
        reviewer_id=request.user.id,
        reviewer_name=request.user.get_username(),
        comment=request.POST.get("comment", "")[:5000],
    )
    messages.success(request, "Marked as reviewed.")
    return redirect("audit:record_detail", slug=request.tenant.slug, record_id=record.id)


@tenant_view(*REVIEW_ROLES)
def chain_status(request):
    report = verify_chain()
    return render(request, "audit/_chain.html", {"report": report})


def _streamed(tenant, chunks):
    """An async iterator over a sync generator, one chunk per thread hop, in the tenant's schema
    (the response is consumed after the middleware has returned): constant memory under ASGI."""

    def produce():
        with schema_context(tenant.schema_name):
            yield from chunks

    generator = produce()
    sentinel = object()

    async def stream():
        while True:
            chunk = await sync_to_async(next)(generator, sentinel)
            if chunk is sentinel:
                return
            yield chunk

    return stream()


@tenant_view(*REVIEW_ROLES)
def export(request, fmt: str):
    filters, _ = _filters(request)
    if fmt == "csv":
        body, content_type, suffix = selectors.export_csv(filters), "text/csv", "csv"
    else:
        body, content_type, suffix = (
            selectors.export_jsonl(filters),
            "application/x-ndjson",
            "jsonl",
        )
    response = StreamingHttpResponse(_streamed(request.tenant, body), content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="audit-{request.tenant.slug}.{suffix}"'
    return response
