"""Documents and search API (scope "documents"): ``/api/v1/documents``,
``/api/v1/documents/<id>``, ``/api/v1/documents/<id>/reingest``, ``/api/v1/search``.

Every id resolves in the caller's own schema, so another tenant's document id is a 404."""

from __future__ import annotations

from dataclasses import asdict

from django.core.exceptions import RequestDataTooBig
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from config.params import int_query_param
from gateway.errors import InvalidRequest, NotFound, PayloadTooLarge
from jobs.idempotency import idempotent
from retrieval import selectors, services
from retrieval.models import Document
from retrieval.parsing import normalise_media_type
from retrieval.serializers import (
    DocumentPageSerializer,
    DocumentSerializer,
    DocumentTextSerializer,
    DocumentUploadSerializer,
    SearchRequestSerializer,
    SearchResponseSerializer,
)

MAX_PAGE = 100

_ERRORS = {
    400: OpenApiResponse(description="invalid_request"),
    404: OpenApiResponse(description="not_found (also another tenant's id)"),
}


def _document(document_id: int) -> Document:
    document = selectors.documents().filter(pk=document_id).first()
    if document is None:
        raise NotFound(f"No document {document_id}.", param="id", code="document_not_found")
    return document


class DocumentListView(APIView):
    required_scope = "documents"
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def initial(self, request, *args, **kwargs):
        if request.method != "POST":
            return super().initial(request, *args, **kwargs)
        super().initial(request, *args, **kwargs)
        # Parsed here, once authenticated, so a body over the limit is a 413 also when the
        # Idempotency-Key check is the first to read it.
        try:
            request.data  # noqa: B018
        except RequestDataTooBig as exc:
            raise PayloadTooLarge("The request body is too large.") from exc

    @extend_schema(
        summary="List documents",
        parameters=[
            OpenApiParameter("status", str, enum=list(Document.Status.values)),
            OpenApiParameter("limit", int, description=f"1 to {MAX_PAGE} (default 50)"),
            OpenApiParameter("offset", int),
        ],
        responses={200: DocumentPageSerializer, 400: _ERRORS[400]},
    )
    def get(self, request):
        status = request.query_params.get("status") or None
        if status and status not in Document.Status.values:
            raise InvalidRequest(f"Unknown status {status!r}.", param="status")
        limit = int_query_param(request, "limit", 50, 1, MAX_PAGE)
        offset = int_query_param(request, "offset", 0, 0, 10**9)
        queryset = selectors.documents(status=status)
        page = queryset[offset : offset + limit]
        return Response(
            {
                "data": DocumentSerializer(page, many=True).data,
                "total": queryset.count(),
                "limit": limit,
                "offset": offset,
            }
        )

    @extend_schema(
        summary="Add a document",
        description="Multipart upload (``file``) or JSON with the text itself. The same content "
        "uploaded again answers 200 with the existing document; a new one answers 201 and is "
        "ingested in the background (poll its status, or subscribe to the document.ready and "
        "document.failed webhooks). With an ``Idempotency-Key`` header, a retry with the same "
        "key and body within 24 hours gets the first answer again (``Idempotent-Replayed: "
        "true``); the same key with another body or file is a 409 ``idempotency_key_reused``, "
        "and a retry while the first is still being stored a 409 ``idempotency_in_progress``.",
        request={
            "application/json": DocumentTextSerializer,
            "multipart/form-data": DocumentUploadSerializer,
        },
        responses={
            201: DocumentSerializer,
            200: DocumentSerializer,
            400: _ERRORS[400],
            413: OpenApiResponse(description="payload_too_large"),
            409: OpenApiResponse(description="idempotency_key_reused or idempotency_in_progress"),
            415: OpenApiResponse(description="unsupported_media_type"),
        },
    )
    @idempotent
    def post(self, request):
        data = request.data
        if request.content_type.startswith("multipart/"):
            body = DocumentUploadSerializer(data=data)
            body.is_valid(raise_exception=True)
            upload = body.validated_data["file"]
            services.check_size(upload.size)  # before reading it
            media_type = normalise_media_type(
                body.validated_data.get("media_type") or upload.content_type or "",
                upload.name or "",
            )
            fields = {
                "title": body.validated_data.get("title") or upload.name or "",
                "content": upload.read(),
                "media_type": media_type,
                "source": upload.name or "",
            }
        else:
            body = DocumentTextSerializer(data=data)
            body.is_valid(raise_exception=True)
            fields = {
                "title": body.validated_data.get("title", ""),
                "content": body.validated_data["text"].encode(),
                "media_type": normalise_media_type(body.validated_data["media_type"]),
                "source": body.validated_data["source"],
            }
        document, created = services.create_document(
            **fields,
            metadata=body.validated_data["metadata"],
            access_tags=body.validated_data["access_tags"],
            created_by_key_id=request.auth.id,
            created_by_name=request.auth.prefix,
        )
        return Response(DocumentSerializer(document).data, status=201 if created else 200)


class DocumentDetailView(APIView):
    required_scope = "documents"

    @extend_schema(summary="Get a document", responses={200: DocumentSerializer, **_ERRORS})
    def get(self, request, document_id: int):
        return Response(DocumentSerializer(_document(document_id)).data)

    @extend_schema(summary="Delete a document and its chunks", responses={204: None, **_ERRORS})
    def delete(self, request, document_id: int):
        services.delete_document(document=_document(document_id))
        return Response(status=204)


class DocumentReingestView(APIView):
    required_scope = "documents"

    @extend_schema(
        summary="Re-ingest a document",
        description="Builds a new version; the current one stays searchable until it is done.",
        request=None,
        responses={202: DocumentSerializer, **_ERRORS},
    )
    def post(self, request, document_id: int):
        document = services.reingest_document(document=_document(document_id))
        return Response(DocumentSerializer(document).data, status=202)


class SearchView(APIView):
    required_scope = "documents"

    @extend_schema(
        summary="Hybrid search in the tenant's documents",
        description="Vector and full-text retrieval fused by reciprocal rank fusion. ``filters`` "
        'match document metadata (``{"key": value}`` or ``{"key": [any, of]}``); '
        "``access_tags`` are the caller's tags. ``degraded`` is true when the embedder was "
        "unavailable and the results come from full text alone.",
        request=SearchRequestSerializer,
        responses={200: SearchResponseSerializer, 400: _ERRORS[400]},
    )
    def post(self, request):
        body = SearchRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        result = selectors.search(
            query=data["query"],
            top_k=data["top_k"],
            filters=data["filters"] or None,
            access_tags=data["access_tags"],
            tenant=request.tenant,
        )
        return Response(
            {
                "results": [asdict(hit) for hit in result.hits],
                "degraded": result.degraded,
                "degraded_reason": result.degraded_reason,
                "retrievers": list(result.retrievers),
                "embedding_space": result.embedding_space,
            }
        )
