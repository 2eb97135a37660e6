import itertools

import pytest

_n = itertools.count()


@pytest.fixture
def fresh_tenant(transactional_db):
    """A tenant of its own, with a plan the test may tighten (budgets are per tenant)."""
    from tenants import services

    n = next(_n)
    plan = services.create_plan(
        name=f"Tight {n}-{id(object())}", slug=f"tight-{n}-{id(object()) % 10**6}"
    )
    tenant = services.provision_tenant(
        name=f"Budget {n}", slug=f"budget-{n}-{id(object()) % 10**6}", plan=plan
    )
    issued = services.create_api_key(tenant=tenant, name="k")
    yield tenant, issued.plaintext
    from gateway.recorder import recorder

    recorder.flush()  # the server's background writes into this schema end first
    tenant.delete(force_drop=True)
