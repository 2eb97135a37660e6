"""Writes for tenants, plans, memberships and API keys. Each function is one business action."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import schema_exists

from gateway.errors import InvalidRequest
from tenants import selectors
from tenants.models import ApiKey, Domain, Membership, Plan, Tenant

KEY_PREFIX = "sk-sb-"
TEMPLATE_SCHEMA = "tenant_template"


def digest_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def schema_name_for(slug: str) -> str:
    return "t_" + slug.replace("-", "_")


# --- plans --------------------------------------------------------------------------------------


def create_plan(
    *,
    name: str,
    slug: str,
    monthly_token_limit: int | None = None,
    monthly_spend_limit: Decimal | None = None,
    soft_limit_percent: int = 80,
    requests_per_minute: int | None = None,
    tokens_per_minute: int | None = None,
    allowed_aliases: list[str] | None = None,
) -> Plan:
    plan = Plan(
        name=name,
        slug=slug,
        monthly_token_limit=monthly_token_limit,
        monthly_spend_limit=monthly_spend_limit,
        soft_limit_percent=soft_limit_percent,
        requests_per_minute=requests_per_minute,
        tokens_per_minute=tokens_per_minute,
        allowed_aliases=allowed_aliases or [],
    )
    plan.full_clean()
    plan.save()
    return plan


def get_or_create_default_plan() -> Plan:
    plan = Plan.objects.filter(slug="standard").first()
    if plan is None:
        plan = create_plan(
            name="Standard",
            slug="standard",
            monthly_token_limit=50_000_000,
            monthly_spend_limit=Decimal("500"),
            requests_per_minute=600,
            tokens_per_minute=1_000_000,
        )
    return plan


# --- tenants ------------------------------------------------------------------------------------


def ensure_template_schema() -> None:
    """Make sure the migrated template schema that new tenants are cloned from exists.

    It is an internal tenant row (status ``template``) so that ``migrate_schemas`` keeps it up to
    date with every tenant migration.
    """
    if Tenant.objects.filter(schema_name=TEMPLATE_SCHEMA).exists() and schema_exists(
        TEMPLATE_SCHEMA
    ):
        return
    template = Tenant.objects.filter(schema_name=TEMPLATE_SCHEMA).first() or Tenant(
        schema_name=TEMPLATE_SCHEMA,
        name="Template (internal)",
        slug="tenant-template",
        status=Tenant.Status.TEMPLATE,
    )
    template.save(verbosity=0)
    if not schema_exists(TEMPLATE_SCHEMA):
        template.create_schema(check_if_exists=True, verbosity=0)
    _load_prompt_defaults(template)


def _load_prompt_defaults(tenant: Tenant) -> None:
    from django_tenants.utils import schema_context

    from prompts.services import load_defaults

    with schema_context(tenant.schema_name):
        load_defaults()


def provision_tenant(
    *,
    name: str,
    slug: str,
    plan: Plan | None = None,
    domain: str | None = None,
    pii_mode: str = Tenant.PiiMode.REDACT,
    allowed_providers: list[str] | None = None,
) -> Tenant:
    """Create a tenant, its schema (cloned from the template) and its primary domain."""
    if Tenant.objects.filter(slug=slug).exists():
        raise InvalidRequest(f"A tenant with slug {slug!r} already exists.", param="slug")
    if domain and Domain.objects.filter(domain=domain).exists():
        raise InvalidRequest(f"The domain {domain!r} is already taken.", param="domain")
    ensure_template_schema()
    tenant = Tenant(
        name=name,
        slug=slug,
        schema_name=schema_name_for(slug),
        plan=plan or get_or_create_default_plan(),
        pii_mode=pii_mode,
        allowed_providers=allowed_providers or [],
    )
    tenant.full_clean()
    tenant.save(verbosity=0)
    # Clones of the template already hold the shipped defaults; this loads any newer ones.
    _load_prompt_defaults(tenant)
    if domain:
        Domain.objects.create(domain=domain, tenant=tenant, is_primary=True)
    connection.set_schema_to_public()
    return tenant


def set_tenant_status(*, tenant: Tenant, status: str) -> Tenant:
    if status not in {Tenant.Status.ACTIVE, Tenant.Status.SUSPENDED}:
        raise InvalidRequest("Status must be active or suspended.", param="status")
    tenant.status = status
    tenant.save(update_fields=["status"])
    selectors.forget_cached_keys(tenant_id=tenant.id)
    return tenant


def update_tenant_settings(*, tenant: Tenant, **fields) -> Tenant:
    allowed = {
        "name",
        "plan",
        "pii_mode",
        "allowed_providers",
        "retention_days",
        "limit_overrides",
        "text_search_config",
        "forbidden_terms",
    }
    unknown = set(fields) - allowed
    if unknown:
        raise InvalidRequest(
            f"Unknown tenant setting: {sorted(unknown)[0]}", param=sorted(unknown)[0]
        )
    for field, value in fields.items():
        setattr(tenant, field, value)
    tenant.full_clean(exclude=["schema_name"])
    tenant.save(update_fields=list(fields))
    selectors.forget_cached_keys(tenant_id=tenant.id)
    return tenant


# --- staff --------------------------------------------------------------------------------------


def create_staff_user(*, username: str, email: str, password: str, superuser: bool = False):
    user_model = get_user_model()
    if user_model.objects.filter(username=username).exists():
        raise InvalidRequest(f"A user named {username!r} already exists.", param="username")
    if superuser:
        return user_model.objects.create_superuser(
            username=username, email=email, password=password
        )
    return user_model.objects.create_user(
        username=username, email=email, password=password, is_staff=True
    )


def set_membership(*, user, tenant: Tenant, role: str) -> Membership:
    if role not in Membership.Role.values:
        raise InvalidRequest(f"Unknown role {role!r}.", param="role")
    membership, _ = Membership.objects.update_or_create(
        user=user, tenant=tenant, defaults={"role": role}
    )
    return membership


def remove_membership(*, user, tenant: Tenant) -> None:
    Membership.objects.filter(user=user, tenant=tenant).delete()


# --- API keys -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedKey:
    """A new key: the stored row and the plaintext, which exists only in this object."""

    key: ApiKey
    plaintext: str


def create_api_key(
    *,
    tenant: Tenant,
    name: str,
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
    created_by_id: int | None = None,
) -> IssuedKey:
    scopes = list(scopes) if scopes else list(ApiKey.ALL_SCOPES)
    unknown = [scope for scope in scopes if scope not in ApiKey.ALL_SCOPES]
    if unknown:
        raise InvalidRequest(f"Unknown scope {unknown[0]!r}.", param="scopes")
    if expires_at is not None and expires_at <= timezone.now():
        raise InvalidRequest("The expiry must be in the future.", param="expires_at")
    if not name.strip():
        raise InvalidRequest("A key needs a name.", param="name")
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey.objects.create(
        tenant=tenant,
        name=name.strip()[:100],
        prefix=plaintext[: len(KEY_PREFIX) + 6],
        digest=digest_key(plaintext),
        scopes=scopes,
        expires_at=expires_at,
        created_by_id=created_by_id,
    )
    return IssuedKey(key=key, plaintext=plaintext)


@transaction.atomic
def revoke_api_key(*, key: ApiKey) -> ApiKey:
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    selectors.forget_cached_keys(digest=key.digest)
    return key
