"""Shared fixtures: tenants (made once per test session and reused), keys, staff users, the fake
provider server, and a real ASGI server running the project against the test database."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass

import pytest
from django.db import connection
from django_tenants.utils import schema_context

pytest_plugins = ["tests.fixtures_gateway", "tests.fixtures_shared"]


@dataclass
class TenantFixture:
    tenant: object
    key: str  # plaintext API key with every scope
    key_id: int

    @property
    def slug(self) -> str:
        return self.tenant.slug

    @property
    def schema(self) -> str:
        return self.tenant.schema_name

    def headers(self) -> dict[str, str]:
        return {"HTTP_AUTHORIZATION": f"Bearer {self.key}"}

    def context(self):
        """Run ORM code inside this tenant's schema."""
        return schema_context(self.tenant.schema_name)


_TENANTS = {
    "a": ("tenant-a", "Tenant A", "a.switchboard.test"),
    "b": ("tenant-b", "Tenant B", "b.switchboard.test"),
}


def _make_tenant(slug: str, name: str, domain: str | None = None) -> TenantFixture:
    from tenants import services
    from tenants.models import Tenant

    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        # The schema survives a flush of the public tables; provisioning reuses it.
        tenant = services.provision_tenant(name=name, slug=slug, domain=domain)
    issued = services.create_api_key(tenant=tenant, name="test key")
    return TenantFixture(tenant=tenant, key=issued.plaintext, key_id=issued.key.id)


@pytest.fixture(scope="session")
def tenants(django_db_setup, django_db_blocker) -> dict[str, TenantFixture]:
    """Two tenants with schemas, domains and keys, made once per test session (committed)."""
    with django_db_blocker.unblock():
        made = {k: _make_tenant(*spec) for k, spec in _TENANTS.items()}
        connection.set_schema_to_public()
    return made


def _refresh_after_flush(tenants: dict[str, TenantFixture]) -> None:
    """Transactional tests end by truncating the public tables (tenants, keys); tenant schemas
    and their data stay. Re-create the public rows so the session tenants keep working."""
    from tenants.models import ApiKey

    for name, fixture in tenants.items():
        if not ApiKey.objects.filter(pk=fixture.key_id).exists():
            fresh = _make_tenant(*_TENANTS[name])
            fixture.tenant, fixture.key, fixture.key_id = fresh.tenant, fresh.key, fresh.key_id
    connection.set_schema_to_public()


@pytest.fixture
def tenant_a(tenants, django_db_blocker) -> TenantFixture:
    with django_db_blocker.unblock():
        _refresh_after_flush(tenants)
    return tenants["a"]


@pytest.fixture
def tenant_b(tenants, django_db_blocker) -> TenantFixture:
    with django_db_blocker.unblock():
        _refresh_after_flush(tenants)
    return tenants["b"]


@pytest.fixture(autouse=True)
def _public_schema_after_test():
    yield
    with contextlib.suppress(Exception):
        connection.set_schema_to_public()


@pytest.fixture
def staff(db, tenants):
    """Factory: a staff user with a role in a tenant, logged into a test client."""
    from django.test import Client

    from tenants import services

    _refresh_after_flush(tenants)

    def make(role: str | None, tenant_key: str = "a", superuser: bool = False):
        count = make.counter = getattr(make, "counter", 0) + 1
        user = services.create_staff_user(
            username=f"{role or 'root'}-{count}-{tenant_key}",
            email="",
            password="pw-Secret-123",
            superuser=superuser,
        )
        if role:
            services.set_membership(user=user, tenant=tenants[tenant_key].tenant, role=role)
        client = Client()
        client.force_login(user)
        client.user = user
        return client

    return make


# --- the fake provider -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def simulator_session():
    from gateway.simulator import SimulatorServer

    sim = SimulatorServer()
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def simulator(simulator_session):
    """The fake provider, reset (no faults, no script, nothing recorded) for each test."""
    simulator_session.reset()
    yield simulator_session
    simulator_session.reset()


# --- a real ASGI server running the project ------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningServer:
    url: str
    server: object


@pytest.fixture(scope="session")
def asgi_server(django_db_setup, django_db_blocker, tenants):
    """Uvicorn serving config.asgi in a background thread, against the test database.

    Data a test wants the server to see must be committed (use ``transactional_db`` or the
    session fixtures), since the server uses its own database connections.
    """
    import uvicorn

    from config.asgi import application

    port = _free_port()
    config = uvicorn.Config(
        application, host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    blocker = django_db_blocker.unblock()
    blocker.__enter__()
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the ASGI test server did not start"
    yield RunningServer(url=f"http://127.0.0.1:{port}", server=server)
    server.should_exit = True
    thread.join(timeout=5)
    blocker.__exit__(None, None, None)
