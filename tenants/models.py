"""Public-schema models: plans, tenants and their domains, staff memberships, API keys."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone
from django_tenants.models import DomainMixin, TenantMixin

slug_validator = RegexValidator(
    r"^[a-z][a-z0-9-]{1,40}$",
    "Use 2-41 lowercase letters, digits or hyphens, starting with a letter.",
)


class Plan(models.Model):
    """Limits the gateway enforces for every tenant on the plan (a tenant may override them)."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=50, unique=True)
    monthly_token_limit = models.BigIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="Hard limit on tokens per calendar month; empty means unlimited.",
    )
    monthly_spend_limit = models.DecimalField(
        max_digits=14,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(0))],
        help_text="Hard limit on spend (USD) per calendar month; empty means unlimited.",
    )
    soft_limit_percent = models.PositiveSmallIntegerField(
        default=80,
        validators=[MinValueValidator(1)],
        help_text="Share of a hard limit at which the tenant is warned.",
    )
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_minute = models.PositiveIntegerField(null=True, blank=True)
    allowed_aliases = ArrayField(
        models.CharField(max_length=100),
        default=list,
        blank=True,
        help_text="Model aliases tenants on this plan may call; empty means all.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Tenant(TenantMixin):
    """A customer of the SaaS vendor. Its data lives in its own PostgreSQL schema."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"
        TEMPLATE = "template", "Template (internal)"

    class PiiMode(models.TextChoices):
        REDACT = "redact", "Redact before it leaves, restore on the way back"
        BLOCK = "block", "Refuse requests that contain PII"
        ALLOW = "allow", "Allow (the tenant's agreement permits it)"

    name = models.CharField(max_length=200)
    slug = models.CharField(max_length=41, unique=True, validators=[slug_validator])
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="tenants", null=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    allowed_providers = ArrayField(
        models.CharField(max_length=50),
        default=list,
        blank=True,
        help_text="Provider kinds this tenant's data may be sent to; empty means all.",
    )
    pii_mode = models.CharField(max_length=10, choices=PiiMode.choices, default=PiiMode.REDACT)
    retention_days = models.PositiveIntegerField(default=365, validators=[MinValueValidator(1)])
    text_search_config = models.CharField(max_length=40, default="english")
    forbidden_terms = ArrayField(models.CharField(max_length=200), default=list, blank=True)
    # Per-tenant overrides of the plan's limits, same names as Plan fields; absent means "plan's".
    limit_overrides = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    auto_create_schema = True
    auto_drop_schema = True

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class Domain(DomainMixin):
    """A hostname that belongs to one tenant (API calls on it must use that tenant's keys)."""


class Membership(models.Model):
    """A staff user's role in one tenant. Superusers see every tenant without a membership."""

    class Role(models.TextChoices):
        ADMIN = "admin", "Admin"
        EDITOR = "editor", "Prompt editor"
        REVIEWER = "reviewer", "Compliance reviewer"
        VIEWER = "viewer", "Viewer"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "tenant"], name="one_membership_per_tenant")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant} as {self.role}"


class ApiKey(models.Model):
    """A tenant's API key. Only a SHA-256 digest and a short readable prefix are stored.

    Keys are 256-bit random secrets, so a fast digest is safe to store and allows a lookup by
    index; the plaintext is shown once at creation and can never be read again.
    """

    class Scope(models.TextChoices):
        INFERENCE = "inference", "Model calls and feature runs"
        DOCUMENTS = "documents", "Documents and search"
        USAGE = "usage", "Read usage"
        ADMIN = "admin", "Manage webhooks and settings"

    ALL_SCOPES = [choice.value for choice in Scope]

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=24, db_index=True)
    digest = models.CharField(max_length=64, unique=True)
    scopes = ArrayField(models.CharField(max_length=20), default=list)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_by_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Per-key rate limits (requests and tokens per minute); empty means only the tenant's apply.
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_minute = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def is_usable(self, now=None) -> bool:
        now = now or timezone.now()
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > now
