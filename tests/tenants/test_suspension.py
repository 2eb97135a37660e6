from tenants import services


def test_suspended_tenant_keys_get_403(client, db, tenant_a):
    services.set_tenant_status(tenant=tenant_a.tenant, status="suspended")
    try:
        response = client.get("/v1/models", **tenant_a.headers())
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "tenant_suspended"
    finally:
        services.set_tenant_status(tenant=tenant_a.tenant, status="active")
