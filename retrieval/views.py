"""The documents console: list with live ingestion status, upload, chunk viewer, delete and
re-ingest, and a search playground showing each retriever's ranks beside the fused ones.

Editors and admins change; reviewers and viewers read (403 on any change)."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from gateway.errors import SwitchboardError
from retrieval import selectors, services
from retrieval.embedding import embedding_space
from retrieval.forms import DocumentForm, SearchForm
from retrieval.models import Document
from retrieval.parsing import SUPPORTED_MEDIA_TYPES, normalise_media_type
from tenants.decorators import EDIT_ROLES, READ_ROLES, tenant_view


def _actor_name(request) -> str:
    return f"console:{request.user.get_username()}"[:150]


@tenant_view(*READ_ROLES)
def document_list(request):
    status = request.GET.get("status") or None
    if status not in Document.Status.values:
        status = None
    title = (request.GET.get("q") or "").strip() or None
    media_type = request.GET.get("media_type") or None
    if media_type not in SUPPORTED_MEDIA_TYPES:
        media_type = None
    rows = list(selectors.documents(status=status, title=title, media_type=media_type)[:200])
    context = {
        "rows": rows,
        "in_flight": any(d.is_in_flight for d in rows),
        "status": status or "",
        "q": title or "",
        "media_type": media_type or "",
        "statuses": Document.Status.choices,
        "can_edit": request.role in EDIT_ROLES,
        "form": DocumentForm(),
        "media_types": SUPPORTED_MEDIA_TYPES,
    }
    if request.htmx and request.GET.get("partial") == "rows":
        return render(request, "retrieval/_document_rows.html", context)
    return render(request, "retrieval/document_list.html", context)


def _uploaded_fields(upload, title: str) -> dict:
    services.check_size(upload.size)  # before reading it
    return {
        "content": upload.read(),
        "media_type": normalise_media_type(upload.content_type or "", upload.name or ""),
        "source": upload.name or "",
        "title": title or upload.name or "",
    }


@tenant_view(*EDIT_ROLES)
@require_POST
def document_add(request):
    """Add one pasted text or several files; each file succeeds or fails on its own, with its
    own message. An htmx request gets the refreshed rows and the messages back in place."""
    form = DocumentForm(request.POST, request.FILES)
    if not form.is_valid():
        for error in form.errors.values():
            messages.error(request, " ".join(error))
        return _after_add(request)
    data = form.cleaned_data
    uploads = data.get("file") or []
    if uploads:
        title = data["title"] if len(uploads) == 1 else ""
        batch = [(u.name, lambda u=u: _uploaded_fields(u, title)) for u in uploads]
    else:
        pasted = {
            "content": data["text"].encode(),
            "media_type": data["media_type"] or "text/plain",
            "source": "console",
            "title": data["title"],
        }
        batch = [(data["title"] or "Pasted text", lambda: pasted)]
    for label, fields in batch:
        try:
            document, created = services.create_document(
                **fields(),
                metadata=data["metadata"],
                access_tags=data["access_tags"],
                created_by_name=_actor_name(request),
            )
        except SwitchboardError as exc:
            messages.error(request, f"{label}: {exc.message}")
            continue
        if created:
            messages.success(request, f"“{document.title}” is queued for ingestion.")
        else:
            messages.info(request, f"The same content is already stored as “{document.title}”.")
    return _after_add(request)


def _after_add(request):
    if not request.htmx:
        return redirect("retrieval:document_list", slug=request.tenant.slug)
    rows = list(selectors.documents()[:200])
    context = {
        "rows": rows,
        "in_flight": any(d.is_in_flight for d in rows),
        "status": "",
        "q": "",
        "media_type": "",
    }
    return render(request, "retrieval/_upload_result.html", context)


@tenant_view(*READ_ROLES)
def document_detail(request, document_id: int):
    document = get_object_or_404(selectors.documents(), pk=document_id)
    context = {
        "document": document,
        "chunks": selectors.current_chunks(document),
        "can_edit": request.role in EDIT_ROLES,
        "space": embedding_space(),
    }
    if request.htmx and request.GET.get("partial") == "status":
        return render(request, "retrieval/_document_status.html", context)
    return render(request, "retrieval/document_detail.html", context)


@tenant_view(*EDIT_ROLES)
@require_POST
def document_reingest(request, document_id: int):
    document = get_object_or_404(selectors.documents(), pk=document_id)
    services.reingest_document(document=document)
    messages.success(request, f"“{document.title}” is queued for re-ingestion.")
    return redirect("retrieval:document_detail", slug=request.tenant.slug, document_id=document.id)


@tenant_view(*EDIT_ROLES)
@require_POST
def document_delete(request, document_id: int):
    document = get_object_or_404(selectors.documents(), pk=document_id)
    services.delete_document(document=document)
    messages.success(request, f"“{document.title}” was deleted.")
    return redirect("retrieval:document_list", slug=request.tenant.slug)


@tenant_view(*READ_ROLES)
def search_playground(request):
    form = SearchForm(request.GET or None)
    context = {"form": form, "results": None, "error": ""}
    if form.is_bound and form.is_valid():
        data = form.cleaned_data

        def run(retrievers: tuple[str, ...]):
            return selectors.search(
                query=data["query"],
                top_k=data["top_k"],
                filters=data["filters"] or None,
                access_tags=data["access_tags"],
                retrievers=retrievers,
                tenant=request.tenant,
            )

        try:
            context["results"] = run(("lexical", "vector"))
            context["lexical"] = run(("lexical",))
            context["vector"] = None if context["results"].degraded else run(("vector",))
        except SwitchboardError as exc:
            context["error"] = exc.message
    elif form.is_bound:
        context["error"] = "; ".join(" ".join(e) for e in form.errors.values())
    if request.htmx:
        return render(request, "retrieval/_search_results.html", context)
    return render(request, "retrieval/search.html", context)
