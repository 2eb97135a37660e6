"""GET /api/v1/usage: the calling tenant's totals, groupings and limits."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from tenants import services as tenant_services
from tests.usage.factories import call_record
from usage import services

pytestmark = pytest.mark.django_db

DAY_1 = datetime(2025, 3, 10, 9, 30, tzinfo=UTC)
DAY_2 = datetime(2025, 3, 11, 23, 59, tzinfo=UTC)

# feature, alias, end user, created, input, output, cost, status, cache hit, degraded
CALLS = [
    ("summarize", "fast", "alice", DAY_1, 100, 20, "0.0012", "ok", False, False),
    ("summarize", "fast", "bob", DAY_1, 50, 10, "0.0006", "ok", True, False),
    ("summarize", "smart", "alice", DAY_2, 300, 80, "0.0125", "ok", False, False),
    ("classify", "fast", "alice", DAY_2, 40, 0, "0.0001", "failed", False, False),
    ("classify", "fast", "", DAY_2, 0, 0, "0", "refused", False, False),
    ("classify", "smart", "bob", DAY_2, 10, 5, "0.00003", "degraded", False, True),
]


@pytest.fixture
def records(tenant_a):
    with tenant_a.context():
        for i, (feature, alias, user, created, inp, out, cost, status, hit, degraded) in enumerate(
            CALLS
        ):
            services.record_usage(
                call_record(
                    f"api-{i}",
                    feature=feature,
                    alias=alias,
                    end_user=user,
                    created_at=created,
                    input_tokens=inp,
                    output_tokens=out,
                    cost=Decimal(cost),
                    status=status,
                    cache_hit=hit,
                    degraded=degraded,
                )
            )
        # outside the range asked for below
        services.record_usage(call_record("api-late", created_at=datetime(2025, 3, 12, tzinfo=UTC)))
    return CALLS


def _get(client, fixture, **params):
    return client.get("/api/v1/usage", params, **fixture.headers())


def _expected(rows) -> dict:
    return {
        "requests": len(rows),
        "input_tokens": sum(r[4] for r in rows),
        "output_tokens": sum(r[5] for r in rows),
        "cost": format(sum(Decimal(r[6]) for r in rows).normalize(), "f"),
        "errors": sum(r[7] == "failed" for r in rows),
        "refused": sum(r[7] == "refused" for r in rows),
        "cache_hits": sum(r[8] for r in rows),
        "degraded": sum(r[9] for r in rows),
        "fallbacks": 0,
    }


def test_totals_equal_the_sums_of_the_records(client, tenant_a, records):
    response = _get(client, tenant_a, **{"from": "2025-03-10", "to": "2025-03-11"})
    assert response.status_code == 200
    body = response.json()
    assert (body["from"], body["to"], body["group_by"]) == ("2025-03-10", "2025-03-11", "none")
    assert body["totals"] == _expected(records)
    assert body["totals"]["cost"] == "0.01443"
    assert body["groups"] == []


@pytest.mark.parametrize(
    ("group_by", "key_of"),
    [
        ("feature", lambda r: r[0]),
        ("model", lambda r: r[1]),
        ("end_user", lambda r: r[2]),
        ("day", lambda r: r[3].date().isoformat()),
    ],
)
def test_groups_sum_to_their_records(client, tenant_a, records, group_by, key_of):
    response = _get(
        client, tenant_a, **{"from": "2025-03-10", "to": "2025-03-11"}, group_by=group_by
    )
    assert response.status_code == 200
    groups = {g.pop("key"): g for g in response.json()["groups"]}
    keys = sorted({key_of(r) for r in records})
    assert sorted(groups) == keys
    for key in keys:
        assert groups[key] == _expected([r for r in records if key_of(r) == key])


def test_default_range_is_this_month(client, tenant_a, records):
    with tenant_a.context():
        services.record_usage(call_record("api-now", input_tokens=7, cost=Decimal("0.5")))
    body = _get(client, tenant_a).json()
    today = timezone.now().date()
    assert body["from"] == today.replace(day=1).isoformat() and body["to"] == today.isoformat()
    assert body["totals"]["requests"] == 1 and body["totals"]["input_tokens"] == 7
    assert body["totals"]["cost"] == "0.5"


def test_limits_show_current_use(client, tenant_a):
    with tenant_a.context():
        services.set_limit(
            tenant=tenant_a.tenant,
            scope="feature",
            scope_value="summarize",
            metric="monthly_tokens",
            hard=Decimal(1000),
            soft_percent=50,
        )
        services.admit(
            tenant=tenant_a.tenant,
            api_key_id=tenant_a.key_id,
            end_user="",
            feature="summarize",
            call_id="limit-1",
            request_id="r",
            estimated_tokens=600,
            max_cost=Decimal("0.01"),
        )
    limits = _get(client, tenant_a).json()["limits"]
    feature = next(x for x in limits if x["scope"] == "feature")
    assert feature["scope_value"] == "summarize" and feature["metric"] == "monthly_tokens"
    assert (feature["hard"], feature["used"], feature["percent"]) == ("1000", "600", 60.0)
    assert feature["state"] == "soft" and feature["source"] == "limit"
    plan = {x["metric"]: x for x in limits if x["scope"] == "tenant"}
    assert plan["requests_per_minute"]["source"] == "plan"
    assert plan["requests_per_minute"]["hard"] == str(tenant_a.tenant.plan.requests_per_minute)


def test_another_tenant_never_sees_these_records(client, tenant_a, tenant_b, records):
    params = {"from": "2025-03-10", "to": "2025-03-11", "group_by": "end_user"}
    assert _get(client, tenant_a, **params).json()["totals"]["requests"] == len(records)
    body = _get(client, tenant_b, **params).json()
    assert body["totals"]["requests"] == 0 and body["groups"] == []


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"from": "2025-13-01"}, "from"),
        ({"to": "yesterday"}, "to"),
        ({"from": "2025-03-12", "to": "2025-03-10"}, "from"),
        ({"from": "2020-01-01", "to": "2025-01-01"}, "from"),
        ({"group_by": "hour"}, "group_by"),
    ],
)
def test_bad_parameters_are_400(client, tenant_a, params, param):
    response = _get(client, tenant_a, **params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and error["param"] == param


def test_key_without_the_usage_scope_is_refused(client, tenant_a):
    issued = tenant_services.create_api_key(
        tenant=tenant_a.tenant, name="inference only", scopes=["inference"]
    )
    response = client.get("/api/v1/usage", HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    assert response.status_code == 403


def test_schema_documents_the_endpoint(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/api/v1/usage"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"from", "to", "group_by"}
    ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    component = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert {"from", "to", "totals", "groups", "limits"} <= set(component["properties"])
