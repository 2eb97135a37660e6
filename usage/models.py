"""Tenant-schema models: what every call cost, and the state that enforces limits on the next."""

from django.db import models


class UsageRecord(models.Model):
    """One per AI call, whatever its outcome (written by the gateway through record_usage)."""

    call_id = models.CharField(max_length=64, unique=True)
    request_id = models.CharField(max_length=128)
    created_at = models.DateTimeField(db_index=True)
    api_key_id = models.BigIntegerField(null=True)
    api_key_prefix = models.CharField(max_length=24, blank=True)
    end_user = models.CharField(max_length=256, blank=True)
    feature = models.CharField(max_length=100)
    mode = models.CharField(max_length=10)
    endpoint = models.CharField(max_length=20)
    alias = models.CharField(max_length=200, blank=True)
    deployment = models.CharField(max_length=200, blank=True)
    provider = models.CharField(max_length=40, blank=True)
    provider_request_id = models.CharField(max_length=200, blank=True)
    prompt_version_id = models.BigIntegerField(null=True)
    variant = models.CharField(max_length=40, blank=True)
    input_tokens = models.IntegerField(default=0)
    output_tokens = models.IntegerField(default=0)
    tokens_estimated = models.BooleanField(default=False)
    cost = models.DecimalField(max_digits=14, decimal_places=8, default=0)
    tokens_saved = models.IntegerField(default=0)
    total_ms = models.FloatField(default=0)
    ttft_ms = models.FloatField(null=True)
    latency_ms = models.JSONField(default=dict)
    attempts = models.PositiveSmallIntegerField(default=0)
    cache_hit = models.BooleanField(default=False)
    fallback_used = models.BooleanField(default=False)
    degraded = models.BooleanField(default=False)
    status = models.CharField(max_length=12)
    error_type = models.CharField(max_length=60, blank=True)
    http_status = models.PositiveSmallIntegerField(default=200)
    # [{"document_id", "chunk_id", "score"}] for retrieval features, in rank order
    retrieved_chunks = models.JSONField(default=list)

    class Meta:
        indexes = [
            models.Index(fields=["feature", "created_at"]),
            models.Index(fields=["end_user", "created_at"]),
            models.Index(fields=["alias", "created_at"]),
        ]


class Limit(models.Model):
    """A limit on a scope below (or overriding) the tenant's plan."""

    class Scope(models.TextChoices):
        TENANT = "tenant", "Tenant"
        API_KEY = "api_key", "API key"
        FEATURE = "feature", "Feature"
        END_USER = "end_user", "End user"

    class Metric(models.TextChoices):
        MONTHLY_TOKENS = "monthly_tokens", "Tokens per month"
        MONTHLY_SPEND = "monthly_spend", "Spend per month (USD)"
        REQUESTS_PER_MINUTE = "requests_per_minute", "Requests per minute"
        TOKENS_PER_MINUTE = "tokens_per_minute", "Tokens per minute"

    scope = models.CharField(max_length=10, choices=Scope.choices)
    # key id, feature slug or end-user id; "*" for end_user means "each end user"
    scope_value = models.CharField(max_length=256, blank=True, default="")
    metric = models.CharField(max_length=24, choices=Metric.choices)
    hard = models.DecimalField(max_digits=18, decimal_places=6)
    soft_percent = models.PositiveSmallIntegerField(default=80)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["scope", "scope_value", "metric"], name="one_limit_per_scope_metric"
            )
        ]


class BudgetCounter(models.Model):
    """Monthly use of one budget scope; reservations hold a call's maximum until it settles."""

    scope_key = models.CharField(max_length=300)  # "tenant", "api_key:12", "feature:x", …
    period = models.CharField(max_length=7)  # YYYY-MM (UTC)
    tokens_used = models.BigIntegerField(default=0)
    spend_used = models.DecimalField(max_digits=18, decimal_places=8, default=0)
    tokens_reserved = models.BigIntegerField(default=0)
    spend_reserved = models.DecimalField(max_digits=18, decimal_places=8, default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope_key", "period"], name="one_counter_per_period")
        ]


class Reservation(models.Model):
    """Written at admission: what a call may spend. Also the write-ahead record of the call: one
    left unsettled past its expiry belongs to a process that died, and is swept into a record."""

    call_id = models.CharField(max_length=64, unique=True)
    request_id = models.CharField(max_length=128)
    period = models.CharField(max_length=7)
    scope_keys = models.JSONField(default=list)
    tokens = models.BigIntegerField()
    spend = models.DecimalField(max_digits=18, decimal_places=8)
    api_key_id = models.BigIntegerField(null=True)
    end_user = models.CharField(max_length=256, blank=True)
    feature = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)
    settled_at = models.DateTimeField(null=True)


class RateWindow(models.Model):
    """Requests and tokens counted in one fixed minute for one scope."""

    scope_key = models.CharField(max_length=300)
    window_start = models.DateTimeField()
    requests = models.IntegerField(default=0)
    tokens = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope_key", "window_start"], name="one_window")
        ]


class SoftLimitNotice(models.Model):
    """A soft limit crossed: recorded (and notified) once per scope, metric and period."""

    scope_key = models.CharField(max_length=300)
    metric = models.CharField(max_length=24)
    period = models.CharField(max_length=7)
    percent = models.PositiveSmallIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["scope_key", "metric", "period"], name="one_notice_per_period"
            )
        ]


# --- rollups: what the dashboard and the usage API read ------------------------------------------
# Maintained by usage.rollups in the same transaction that writes the usage records, so at any
# snapshot they equal the sums of the committed records. They also outlive the records: pruning
# raw records (whole UTC days) leaves the figures intact.


class UsageHourly(models.Model):
    """Sums of the usage records of one UTC hour, feature, model alias and deployment."""

    hour = models.DateTimeField()
    feature = models.CharField(max_length=100)
    alias = models.CharField(max_length=200, blank=True)
    deployment = models.CharField(max_length=200, blank=True)
    calls = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    refused = models.BigIntegerField(default=0)
    cache_hits = models.BigIntegerField(default=0)
    fallbacks = models.BigIntegerField(default=0)
    degraded = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    tokens_saved = models.BigIntegerField(default=0)
    cost = models.DecimalField(max_digits=20, decimal_places=8, default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["hour", "feature", "alias", "deployment"], name="one_hourly_rollup"
            )
        ]


class UsageDailyEndUser(models.Model):
    """Sums per end user and UTC day. Daily rather than hourly: a user's calls are sparse within
    an hour, so an hourly row per user would be nearly as many rows as the records themselves;
    every range the dashboard and the API accept is made of whole UTC days."""

    day = models.DateField()
    end_user = models.CharField(max_length=256, blank=True)
    calls = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    refused = models.BigIntegerField(default=0)
    cache_hits = models.BigIntegerField(default=0)
    fallbacks = models.BigIntegerField(default=0)
    degraded = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    tokens_saved = models.BigIntegerField(default=0)
    cost = models.DecimalField(max_digits=20, decimal_places=8, default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "end_user"], name="one_daily_end_user_rollup")
        ]


class UsageLatencyHourly(models.Model):
    """How many calls of one UTC hour had a stage's latency in one log-spaced bucket (see
    usage.rollups.LATENCY_BUCKETS); only non-empty buckets have a row."""

    hour = models.DateTimeField()
    stage = models.CharField(max_length=20)
    bucket = models.SmallIntegerField()
    calls = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["hour", "stage", "bucket"], name="one_latency_bucket_per_hour"
            )
        ]
