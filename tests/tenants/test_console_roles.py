from tenants.models import ApiKey


def test_viewer_cannot_create_keys(staff, tenant_a):
    client = staff("viewer")
    with tenant_a.context():
        before = ApiKey.objects.count()
    response = client.post(f"/t/{tenant_a.slug}/keys/", {"name": "sneaky", "scopes": ["inference"]})
    assert response.status_code == 403
    with tenant_a.context():
        assert ApiKey.objects.count() == before


def test_admin_creates_key_shown_once(staff, tenant_a):
    client = staff("admin")
    response = client.post(
        f"/t/{tenant_a.slug}/keys/", {"name": "from console", "scopes": ["inference", "usage"]}
    )
    assert response.status_code == 200
    body = response.content.decode()
    key = ApiKey.objects.get(name="from console")
    assert key.scopes == ["inference", "usage"]
    assert 'id="issued-key"' in body
    # the listing afterwards shows only the prefix
    listing = client.get(f"/t/{tenant_a.slug}/keys/").content.decode()
    assert key.prefix in listing
    assert 'id="issued-key"' not in listing


def test_member_of_a_gets_404_on_b(staff, tenant_a, tenant_b):
    client = staff("admin", tenant_key="a")
    assert client.get(f"/t/{tenant_a.slug}/").status_code == 200
    assert client.get(f"/t/{tenant_b.slug}/").status_code == 404
    assert client.get(f"/t/{tenant_b.slug}/keys/").status_code == 404
    assert client.get("/t/no-such-tenant/").status_code == 404


def test_anonymous_is_sent_to_login(client, db, tenant_a):
    response = client.get(f"/t/{tenant_a.slug}/")
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_superuser_sees_every_tenant(staff, tenant_a, tenant_b):
    client = staff(None, superuser=True)
    assert client.get(f"/t/{tenant_b.slug}/").status_code == 200
    listing = client.get("/tenants/").content.decode()
    assert tenant_a.tenant.name in listing and tenant_b.tenant.name in listing
    assert "tenant_template" not in listing


def test_revoke_from_console(staff, tenant_a):
    from tenants import services

    issued = services.create_api_key(tenant=tenant_a.tenant, name="revoke me")
    client = staff("admin")
    response = client.post(f"/t/{tenant_a.slug}/keys/{issued.key.id}/revoke/")
    assert response.status_code == 302
    issued.key.refresh_from_db()
    assert issued.key.revoked_at is not None


def test_provisioning_from_console_needs_superuser(staff, db):
    editor = staff("editor")
    response = editor.post(
        "/tenants/provision/", {"name": "N", "slug": "nope", "pii_mode": "redact"}
    )
    assert response.status_code == 403
