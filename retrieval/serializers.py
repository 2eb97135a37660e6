"""Request and response shapes of the documents and search API."""

from __future__ import annotations

import json

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from retrieval.models import Document
from retrieval.search import MAX_QUERY_CHARS, MAX_TOP_K


class DocumentSerializer(serializers.ModelSerializer):
    version = serializers.IntegerField(source="current_version")
    progress = serializers.SerializerMethodField()

    class Meta:
        model = Document
        fields = [
            "id",
            "title",
            "source",
            "media_type",
            "size_bytes",
            "content_hash",
            "metadata",
            "access_tags",
            "status",
            "failure_reason",
            "version",
            "ingesting_version",
            "progress",
            "created_at",
            "updated_at",
            "ingested_at",
        ]

    def get_progress(self, document: Document) -> dict[str, int]:
        return {"chunks_done": document.chunks_done, "chunks_total": document.chunks_total}


class DocumentPageSerializer(serializers.Serializer):
    data = DocumentSerializer(many=True)
    total = serializers.IntegerField()
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()


class DocumentTextSerializer(serializers.Serializer):
    """JSON body: the document's text itself."""

    title = serializers.CharField(max_length=300, required=False, allow_blank=True)
    text = serializers.CharField(trim_whitespace=False)
    media_type = serializers.CharField(max_length=100, default="text/plain")
    source = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    metadata = serializers.DictField(required=False, default=dict)
    access_tags = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, default=list, max_length=50
    )


@extend_schema_field(OpenApiTypes.STR)
class _JsonOrListField(serializers.Field):
    """A multipart field holding JSON (``["a","b"]``) or, for tags, ``a,b``."""

    def __init__(self, *, kind: type, **kwargs) -> None:
        self.kind = kind
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, self.kind):
            return data
        text = str(data).strip()
        if not text:
            return self.kind()
        try:
            value = json.loads(text)
        except ValueError:
            if self.kind is list:
                return [part.strip() for part in text.split(",") if part.strip()]
            raise serializers.ValidationError("must be a JSON object.") from None
        if not isinstance(value, self.kind):
            raise serializers.ValidationError(f"must be a JSON {self.kind.__name__}.")
        return value

    def to_representation(self, value):
        return value


class DocumentUploadSerializer(serializers.Serializer):
    """multipart/form-data: a file and optional fields (metadata as JSON, tags as JSON or
    comma-separated)."""

    file = serializers.FileField()
    title = serializers.CharField(max_length=300, required=False, allow_blank=True)
    media_type = serializers.CharField(max_length=100, required=False, allow_blank=True)
    metadata = _JsonOrListField(kind=dict, required=False, default=dict)
    access_tags = _JsonOrListField(kind=list, required=False, default=list)


class SearchRequestSerializer(serializers.Serializer):
    query = serializers.CharField(max_length=MAX_QUERY_CHARS)
    top_k = serializers.IntegerField(min_value=1, max_value=MAX_TOP_K, default=8)
    filters = serializers.DictField(required=False, default=dict)
    access_tags = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, default=list, max_length=50
    )


class RetrieverHitSerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    score = serializers.FloatField()


class SearchHitSerializer(serializers.Serializer):
    chunk_id = serializers.IntegerField()
    document_id = serializers.IntegerField()
    title = serializers.CharField()
    heading_path = serializers.ListField(child=serializers.CharField())
    page = serializers.IntegerField(allow_null=True)
    text = serializers.CharField()
    score = serializers.FloatField()
    retrievers = serializers.DictField(child=RetrieverHitSerializer())


class SearchResponseSerializer(serializers.Serializer):
    results = SearchHitSerializer(many=True, source="hits")
    degraded = serializers.BooleanField()
    degraded_reason = serializers.CharField()
    retrievers = serializers.ListField(child=serializers.CharField())
    embedding_space = serializers.CharField()
