"""Tenant-schema documents and their chunks (text, heading path, page, vector, tsvector).

A document's searchable chunks are those of its ``current_version``: ingestion writes a new
version's chunks beside the old ones and flips ``current_version`` in one transaction, so a
search sees either the old chunks or the new ones, never a mix.
"""

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from pgvector.django import HnswIndex, VectorField

EMBEDDING_DIMENSIONS = 384


class Document(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        PROCESSING = "processing", "Processing"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    title = models.CharField(max_length=300)
    source = models.CharField(max_length=500, blank=True)  # file name or caller's reference
    media_type = models.CharField(max_length=100)
    content = models.BinaryField()  # the original bytes, kept so a re-ingest needs no re-upload
    size_bytes = models.PositiveIntegerField()
    content_hash = models.CharField(max_length=64, unique=True)  # sha256 of ``content``
    metadata = models.JSONField(default=dict, blank=True)
    # Empty: public to the tenant. Otherwise a search must hold at least one of these tags.
    access_tags = ArrayField(models.CharField(max_length=100), default=list, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    failure_reason = models.TextField(blank=True)
    current_version = models.PositiveIntegerField(default=0)  # 0: nothing searchable yet
    ingesting_version = models.PositiveIntegerField(default=1)
    chunks_done = models.PositiveIntegerField(default=0)
    chunks_total = models.PositiveIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    lease_until = models.DateTimeField(null=True, blank=True)  # a worker holds it until then
    created_by_key_id = models.BigIntegerField(null=True, blank=True)
    created_by_name = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    ingested_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status"]),
            GinIndex(fields=["metadata"], name="retrieval_doc_metadata_gin"),
            GinIndex(fields=["access_tags"], name="retrieval_doc_tags_gin"),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def progress_percent(self) -> int:
        if not self.chunks_total:
            return 100 if self.status == self.Status.READY else 0
        return min(100, round(100 * self.chunks_done / self.chunks_total))

    @property
    def is_in_flight(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.PROCESSING)


class Chunk(models.Model):
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    version = models.PositiveIntegerField()
    ordinal = models.PositiveIntegerField()
    text = models.TextField()
    heading_path = ArrayField(models.CharField(max_length=300), default=list, blank=True)
    page = models.PositiveIntegerField(null=True, blank=True)
    token_count = models.PositiveIntegerField()
    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS, null=True)
    # The embedding space of ``embedding``; search compares only vectors of the current space.
    embedder = models.CharField(max_length=120, blank=True)
    search_vector = SearchVectorField(null=True)

    class Meta:
        ordering = ["document", "version", "ordinal"]
        constraints = [
            models.UniqueConstraint(
                fields=["document", "version", "ordinal"], name="retrieval_chunk_unique_ordinal"
            )
        ]
        indexes = [
            HnswIndex(
                name="retrieval_chunk_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
            GinIndex(fields=["search_vector"], name="retrieval_chunk_tsv_gin"),
        ]

    def __str__(self) -> str:
        return f"{self.document_id}/v{self.version}#{self.ordinal}"

    @property
    def heading(self) -> str:
        return " › ".join(self.heading_path)
