"""Tenant-schema async work: jobs (async feature runs), their event log (SSE, resumable), and
idempotency keys for POSTs that create runs and jobs."""

import uuid

from django.db import models


class Job(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    feature = models.CharField(max_length=100)
    input = models.JSONField(default=dict)
    end_user = models.CharField(max_length=256, blank=True)
    access_tags = models.JSONField(default=list)
    conversation_id = models.CharField(max_length=64, blank=True)
    cache_options = models.JSONField(default=dict)  # the caller's ``cache`` object
    api_key_id = models.BigIntegerField(null=True)
    api_key_prefix = models.CharField(max_length=24, blank=True)
    priority = models.CharField(max_length=12, default="interactive")
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    result = models.JSONField(null=True)
    error = models.JSONField(null=True)
    webhook_url = models.URLField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True)
    lease_until = models.DateTimeField(null=True)
    finished_at = models.DateTimeField(null=True)
    deadline_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]

    @property
    def call_id(self) -> str:
        """The run id of the job's one AI call, the same on every attempt (one charge)."""
        return f"run_{self.id.hex}"


class JobEvent(models.Model):
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    event = models.CharField(max_length=20)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["seq"]
        constraints = [models.UniqueConstraint(fields=["job", "seq"], name="one_event_per_seq")]


class IdempotencyKey(models.Model):
    key = models.CharField(max_length=255)
    path = models.CharField(max_length=300)
    body_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True)  # null while the first is running
    response = models.JSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key", "path"], name="one_key_per_path")]


class WebhookEndpoint(models.Model):
    """Where a tenant wants events delivered, signed per the Standard Webhooks specification."""

    EVENTS = (
        "job.succeeded",
        "job.failed",
        "document.ready",
        "document.failed",
        "document.deleted",
        "quota.soft_limit",
        "quota.exceeded",
        "alert.triggered",
    )

    url = models.URLField(max_length=500)
    description = models.CharField(max_length=200, blank=True)
    events = models.JSONField(default=list)  # empty: every event
    # The signing secret must be kept to sign; it is shown once, at creation or rotation.
    secret = models.CharField(max_length=100)
    previous_secret = models.CharField(max_length=100, blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    disabled_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def wants(self, event: str) -> bool:
        return self.enabled and (not self.events or event in self.events)


class WebhookDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    msg_id = models.CharField(max_length=64)
    event = models.CharField(max_length=40)
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True)
    last_status_code = models.PositiveSmallIntegerField(null=True)
    last_duration_ms = models.FloatField(null=True)
    last_error = models.CharField(max_length=300, blank=True)
    response_excerpt = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]


class Alert(models.Model):
    """Something a tenant admin should know, raised at most once per kind, subject and window."""

    class Kind(models.TextChoices):
        SOFT_LIMIT = "soft_limit", "Soft limit reached"
        ERROR_RATE = "error_rate", "Error rate above threshold"
        FALLBACK_RATE = "fallback_rate", "Fallback rate above threshold"
        THUMBS_DOWN = "thumbs_down", "Thumbs-down rate rising"
        CIRCUIT_OPEN = "circuit_open", "A deployment's circuit is open"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    subject = models.CharField(max_length=300)  # feature slug, deployment or limit
    message = models.TextField()
    window_start = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "subject", "window_start"], name="one_alert_per_window"
            )
        ]
