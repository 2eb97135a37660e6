"""Tenant-schema audit trail: append-only (a database trigger refuses UPDATE and DELETE except
for the recorded retention purge) and hash-chained per tenant."""

from django.db import models


class AuditRecord(models.Model):
    """One per AI call, whatever its outcome. Text fields hold PII-redacted content only."""

    seq = models.BigIntegerField(unique=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)
    call_id = models.CharField(max_length=64, unique=True)
    request_id = models.CharField(max_length=128)
    created_at = models.DateTimeField(db_index=True)
    api_key_id = models.BigIntegerField(null=True)
    api_key_prefix = models.CharField(max_length=24, blank=True)
    staff_user_id = models.BigIntegerField(null=True)
    staff_username = models.CharField(max_length=150, blank=True)
    end_user = models.CharField(max_length=256, blank=True)
    feature = models.CharField(max_length=100)
    mode = models.CharField(max_length=10)
    endpoint = models.CharField(max_length=20)
    alias = models.CharField(max_length=200, blank=True)
    deployment = models.CharField(max_length=200, blank=True)
    provider = models.CharField(max_length=40, blank=True)
    provider_model = models.CharField(max_length=200, blank=True)
    provider_request_id = models.CharField(max_length=200, blank=True)
    prompt_version_id = models.BigIntegerField(null=True)
    prompt_version_label = models.CharField(max_length=100, blank=True)
    variant = models.CharField(max_length=40, blank=True)
    retrieved_chunks = models.JSONField(default=list)
    input_messages = models.JSONField(default=list)
    raw_output = models.TextField(blank=True)
    parsed_output = models.JSONField(null=True)
    latency_ms = models.JSONField(default=dict)
    attempts = models.JSONField(default=list)
    input_tokens = models.IntegerField(default=0)
    output_tokens = models.IntegerField(default=0)
    cost = models.DecimalField(max_digits=14, decimal_places=8, default=0)
    cache_hit = models.BooleanField(default=False)
    fallback_used = models.BooleanField(default=False)
    degraded = models.BooleanField(default=False)
    injection_suspected = models.BooleanField(default=False)
    pii_found = models.JSONField(default=dict)
    has_pii = models.BooleanField(default=False)
    flags = models.JSONField(default=list)
    status = models.CharField(max_length=12)
    error_type = models.CharField(max_length=60, blank=True)
    error_message = models.TextField(blank=True)

    class Meta:
        ordering = ["-seq"]
        indexes = [
            models.Index(fields=["feature", "-seq"]),
            models.Index(fields=["end_user", "-seq"]),
            models.Index(fields=["alias", "-seq"]),
            models.Index(fields=["status", "-seq"]),
            models.Index(
                fields=["-seq"], name="audit_degraded_idx", condition=models.Q(degraded=True)
            ),
            models.Index(
                fields=["-seq"], name="audit_fallback_idx", condition=models.Q(fallback_used=True)
            ),
            models.Index(
                fields=["-seq"],
                name="audit_injection_idx",
                condition=models.Q(injection_suspected=True),
            ),
            models.Index(fields=["-seq"], name="audit_pii_idx", condition=models.Q(has_pii=True)),
        ]


class Amendment(models.Model):
    """Feedback on a call, optionally with the output a human actually used (append-only)."""

    record = models.ForeignKey(AuditRecord, on_delete=models.PROTECT, related_name="amendments")
    rating = models.CharField(max_length=10, blank=True)  # up | down | 1..5
    edited_output = models.JSONField(null=True)
    editor_id = models.CharField(max_length=256, blank=True)
    editor_name = models.CharField(max_length=256, blank=True)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]


class Review(models.Model):
    """A compliance reviewer's mark on a record (append-only)."""

    record = models.ForeignKey(AuditRecord, on_delete=models.PROTECT, related_name="reviews")
    reviewer_id = models.BigIntegerField()
    reviewer_name = models.CharField(max_length=150)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]


class PurgeRecord(models.Model):
    """The retention purge: which records went, and the hash the chain continues from."""

    purged_through_seq = models.BigIntegerField()
    last_purged_hash = models.CharField(max_length=64)
    records_purged = models.IntegerField()
    retention_days = models.IntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-purged_through_seq"]
