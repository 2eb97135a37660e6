import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone

from tenants import services
from tenants.models import ApiKey


def test_key_is_stored_hashed_and_never_readable(db, tenant_a):
    issued = services.create_api_key(tenant=tenant_a.tenant, name="ci")
    row = ApiKey.objects.get(pk=issued.key.pk)
    stored = " ".join(str(v) for v in row.__dict__.values())
    assert issued.plaintext not in stored
    assert row.digest == hashlib.sha256(issued.plaintext.encode()).hexdigest()
    assert issued.plaintext.startswith(row.prefix)
    assert len(row.prefix) < len(issued.plaintext) // 3


def test_unknown_key_is_401(client, db, tenants):
    response = client.get("/api/v1/usage", HTTP_AUTHORIZATION="Bearer sk-sb-nope")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert response["X-Request-Id"]


def test_missing_key_is_401(client, db, tenants):
    response = client.get("/v1/models")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_revoked_key_is_401(client, db, tenant_a):
    issued = services.create_api_key(tenant=tenant_a.tenant, name="to revoke")
    services.revoke_api_key(key=issued.key)
    response = client.get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    assert response.status_code == 401


def test_expired_key_is_401(client, db, tenant_a):
    issued = services.create_api_key(
        tenant=tenant_a.tenant, name="short", expires_at=timezone.now() + timedelta(seconds=60)
    )
    ApiKey.objects.filter(pk=issued.key.pk).update(expires_at=timezone.now() - timedelta(1))
    from tenants import selectors

    selectors.forget_cached_keys(digest=issued.key.digest)
    response = client.get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    assert response.status_code == 401


def test_key_from_other_tenant_is_refused_on_its_hostname(client, db, settings, tenant_a, tenant_b):
    settings.ALLOWED_HOSTS = [".switchboard.test"]
    response = client.get(
        "/v1/models", HTTP_AUTHORIZATION=f"Bearer {tenant_a.key}", HTTP_HOST="b.switchboard.test"
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "wrong_tenant"


def test_unknown_scope_is_refused(db, tenant_a):
    from gateway.errors import InvalidRequest

    with pytest.raises(InvalidRequest):
        services.create_api_key(tenant=tenant_a.tenant, name="x", scopes=["root"])
