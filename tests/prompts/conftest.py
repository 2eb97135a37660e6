import pytest

from prompts.models import Feature


@pytest.fixture
def features(tenant_a, tenant_b, routing):
    """The shipped features of both tenants, routed to the test deployments (alias "chat")."""
    for tenant in (tenant_a, tenant_b):
        with tenant.context():
            Feature.objects.update(model_alias="chat")
    return tenant_a


@pytest.fixture
def run(asgi_server, tenant_a):
    import httpx

    def post(slug, body, tenant=None):
        tenant = tenant or tenant_a
        return httpx.post(
            f"{asgi_server.url}/api/v1/features/{slug}/runs",
            json=body,
            headers={"Authorization": f"Bearer {tenant.key}"},
            timeout=30,
        )

    return post
