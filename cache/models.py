"""Tenant-schema answer cache: one row per answer a feature run may serve again.

An entry lives in the tenant's own schema and is found only through its keys, which name the
feature, prompt version, serving generation, model (alias and the deployments behind it),
parameters, a fingerprint of the system prompt and context, and the end user (personalised
features) and conversation it was made in. There is no way to look an entry up by request
content alone.

What is stored is exactly what the provider returned for a request that held no personal data
(the gateway never writes an entry for a request whose input contained PII, nor for an answer
that did), so serving it never needs another request's PII vault.
"""

from django.db import models
from pgvector.django import HnswIndex, VectorField

EMBEDDING_DIMENSIONS = 384


class CacheEntry(models.Model):
    # sha256 over the canonical request: the exact layer's key
    exact_key = models.CharField(max_length=64, unique=True)
    # sha256 over everything but the user's input: the semantic layer's isolation key
    semantic_key = models.CharField(max_length=64, db_index=True)
    feature = models.CharField(max_length=100)
    prompt_version_id = models.BigIntegerField()
    generation = models.PositiveIntegerField(default=0)
    model = models.CharField(max_length=200)  # the alias
    context_fingerprint = models.CharField(max_length=64)
    end_user = models.CharField(max_length=256, blank=True)  # personalised features only
    # NULL: made outside any conversation (and so never served inside one, nor the reverse)
    conversation_id = models.CharField(  # noqa: DJ001
        max_length=64, null=True, blank=True, db_index=True
    )
    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS, null=True)
    embedder = models.CharField(max_length=120, blank=True)  # embedding space of ``embedding``
    input_text = models.TextField(blank=True)  # the user's input, for the console
    content = models.TextField()
    parsed = models.JSONField(null=True)
    deployment = models.CharField(max_length=200, blank=True)
    provider_model = models.CharField(max_length=200, blank=True)
    input_tokens = models.IntegerField(default=0)
    output_tokens = models.IntegerField(default=0)
    # {document id: chunk version} of the retrieved chunks the answer was built from
    sources = models.JSONField(default=dict)
    source_call_id = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)
    hit_count = models.PositiveIntegerField(default=0)
    last_hit_at = models.DateTimeField(null=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["feature", "created_at"]),
            HnswIndex(
                name="answer_cache_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
        ]

    def __str__(self) -> str:
        return f"{self.feature}#{self.pk}"

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens
