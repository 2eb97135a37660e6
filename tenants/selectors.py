"""Reads for tenants, keys and memberships.

Key → tenant and hostname → tenant are read on every API request, so they are cached in the
process for a few seconds (``SWITCHBOARD_KEY_CACHE_SECONDS``). A revocation or suspension made in
this process takes effect at once; in other processes within that many seconds.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from tenants.models import ApiKey, Domain, Membership, Tenant

_LAST_USED_EVERY_SECONDS = 60.0


@dataclass(frozen=True)
class ResolvedKey:
    """What the request path needs to know about a key, detached from the ORM."""

    id: int
    tenant: Tenant
    prefix: str
    scopes: tuple[str, ...]
    expires_at: datetime | None
    revoked: bool
    requests_per_minute: int | None
    tokens_per_minute: int | None

    def is_usable(self) -> bool:
        if self.revoked:
            return False
        return self.expires_at is None or self.expires_at > timezone.now()


class _TtlCache:
    def __init__(self) -> None:
        self._items: dict[str, tuple[float, object]] = {}
        self._lock = threading.Lock()

    def get(self, key: str):
        ttl = settings.SWITCHBOARD_KEY_CACHE_SECONDS
        with self._lock:
            hit = self._items.get(key)
        if hit is None or ttl <= 0 or time.monotonic() - hit[0] > ttl:
            return None
        return hit[1]

    def put(self, key: str, value: object) -> None:
        with self._lock:
            if len(self._items) > 10_000:
                self._items.clear()
            self._items[key] = (time.monotonic(), value)

    def discard_where(self, predicate) -> None:
        with self._lock:
            for key in [k for k, (_, v) in self._items.items() if predicate(k, v)]:
                del self._items[key]


_keys = _TtlCache()
_hosts = _TtlCache()
_last_used_written: dict[int, float] = {}


def resolve_api_key(digest: str) -> ResolvedKey | None:
    """The key with this digest, or None. Cached briefly; never returns the secret."""
    cached = _keys.get(digest)
    if cached is not None:
        return cached if isinstance(cached, ResolvedKey) else None
    row = ApiKey.objects.select_related("tenant", "tenant__plan").filter(digest=digest).first()
    if row is None:
        _keys.put(digest, False)
        return None
    resolved = ResolvedKey(
        id=row.id,
        tenant=row.tenant,
        prefix=row.prefix,
        scopes=tuple(row.scopes),
        expires_at=row.expires_at,
        revoked=row.revoked_at is not None,
        requests_per_minute=row.requests_per_minute,
        tokens_per_minute=row.tokens_per_minute,
    )
    _keys.put(digest, resolved)
    return resolved


def cached_api_key(digest: str):
    """The cached answer for a digest: a ResolvedKey, None (known unknown), or False (miss)."""
    cached = _keys.get(digest)
    if cached is None:
        return False
    return cached if isinstance(cached, ResolvedKey) else None


def cached_tenant_for_host(hostname: str):
    """A tenant id, None (a shared hostname), or False (not cached)."""
    cached = _hosts.get(hostname)
    if cached is None:
        return False
    return cached or None


def key_use_noted(key) -> bool:
    """True when the key's last use was written recently enough (or the key is unknown)."""
    if key is None or key is False:
        return True
    return time.monotonic() - _last_used_written.get(key.id, 0.0) < _LAST_USED_EVERY_SECONDS


def note_key_used(key_id: int) -> None:
    """Record last use, at most once a minute per key and process (not a write per request)."""
    now = time.monotonic()
    if now - _last_used_written.get(key_id, 0.0) < _LAST_USED_EVERY_SECONDS:
        return
    _last_used_written[key_id] = now
    ApiKey.objects.filter(pk=key_id).update(last_used_at=timezone.now())


def tenant_id_for_host(hostname: str) -> int | None:
    """The tenant that owns this hostname, or None for a shared/API hostname."""
    cached = _hosts.get(hostname)
    if cached is not None:
        return cached or None
    tenant_id = Domain.objects.filter(domain=hostname).values_list("tenant_id", flat=True).first()
    _hosts.put(hostname, tenant_id or 0)
    return tenant_id


def forget_cached_keys(*, digest: str | None = None, tenant_id: int | None = None) -> None:
    if digest is not None:
        _keys.discard_where(lambda k, _v: k == digest)
    if tenant_id is not None:
        _keys.discard_where(lambda _k, v: isinstance(v, ResolvedKey) and v.tenant.id == tenant_id)


def tenants_for_user(user) -> QuerySet[Tenant]:
    """Tenants a staff user may open in the console (all of them for superusers)."""
    tenants = Tenant.objects.exclude(status=Tenant.Status.TEMPLATE).select_related("plan")
    if user.is_superuser:
        return tenants
    return tenants.filter(memberships__user=user)


def role_in_tenant(user, tenant: Tenant) -> str | None:
    """The user's role in the tenant; superusers act as admins everywhere."""
    if not user.is_authenticated:
        return None
    if user.is_superuser:
        return Membership.Role.ADMIN
    return (
        Membership.objects.filter(user=user, tenant=tenant).values_list("role", flat=True).first()
    )


def tenant_by_slug(slug: str) -> Tenant | None:
    return (
        Tenant.objects.exclude(status=Tenant.Status.TEMPLATE)
        .select_related("plan")
        .filter(slug=slug)
        .first()
    )
