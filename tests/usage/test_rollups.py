"""Hourly rollups: the dashboard, the CSV export and the usage API read them, and their figures
equal the sums of the usage records — late records, hour and day boundaries, rebuilds and
settlements racing included."""

import math
import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django_tenants.utils import schema_context

from tests.usage.factories import (
    call_record,
    expected_groups,
    expected_hourly,
    expected_totals,
    varied_records,
)
from usage import rollups, selectors, services
from usage.models import UsageDailyEndUser, UsageHourly, UsageLatencyHourly, UsageRecord

# A leap day no other test writes to: the whole schema's figures for it are this file's records.
DAY = date(2024, 2, 29)
BEFORE, AFTER = DAY - timedelta(days=1), DAY + timedelta(days=1)
START = datetime(2024, 2, 28, 22, tzinfo=UTC)  # two hours before DAY, to two hours after it
FIRST_HOUR = datetime(2024, 2, 28, tzinfo=UTC)
GROUPS = ("none", "feature", "model", "end_user", "day")


def _settle(records, batch: int = 40) -> None:
    """As the recorder does: batches of calls settled in one transaction each."""
    for i in range(0, len(records), batch):
        services.record_usage_batch(records[i : i + batch])


def _dashboard_matches_records(start: date, end: date) -> dict:
    data = selectors.dashboard(start=start, end=end)
    assert data["totals"] == expected_totals(start, end)
    for group_by in GROUPS:
        summary = selectors.usage_summary(start=start, end=end, group_by=group_by)
        assert summary["totals"] == expected_totals(start, end)
        assert summary["groups"] == expected_groups(start, end, group_by)
    daily = {
        (r["day"].date().isoformat(), r["feature"]): (r["requests"], r["tokens"], r["cost"])
        for r in data["daily"]
    }
    by_feature = expected_groups(start, end, "feature")
    assert {f for _, f in daily} == {g["key"] for g in by_feature}
    for day_key in {d for d, _ in daily}:
        day = date.fromisoformat(day_key)
        for group in expected_groups(day, day, "feature"):
            requests, tokens, cost = daily[(day_key, group["key"])]
            assert requests == group["requests"]
            assert tokens == group["input_tokens"] + group["output_tokens"]
            assert format(cost, "f") == group["cost"]
    models = {m["alias"]: (m["requests"], format(m["cost"], "f")) for m in data["by_model"]}
    assert models == {
        g["key"]: (g["requests"], g["cost"]) for g in expected_groups(start, end, "model")
    }
    users = [g for g in expected_groups(start, end, "end_user") if g["key"]]
    users.sort(key=lambda g: (-Decimal(g["cost"]), g["key"]))
    assert [(u["end_user"], u["requests"], format(u["cost"], "f")) for u in data["top_users"]] == [
        (u["key"], u["requests"], u["cost"]) for u in users[:10]
    ]
    return data


@pytest.mark.django_db
def test_dashboard_figures_equal_the_sums_of_the_records(tenant_a):
    with tenant_a.context():
        _settle(varied_records("eq", 400, start=START, hours=28))
        data = _dashboard_matches_records(DAY, DAY)
        _dashboard_matches_records(BEFORE, AFTER)
        assert data["totals"]["requests"] > 300
        assert {p["stage"] for p in data["percentiles"]} == {"total", "guard", "provider", "ttft"}
        # Hourly rows equal the records of their hour, boundaries included.
        rows = {
            (r.hour, r.feature, r.alias, r.deployment): (r.calls, r.input_tokens, r.cost)
            for r in UsageHourly.objects.filter(
                hour__gte=FIRST_HOUR, hour__lt=FIRST_HOUR + timedelta(days=3)
            )
        }
        assert rows == expected_hourly(BEFORE, AFTER)


@pytest.mark.django_db
def test_record_on_an_hour_boundary_counts_in_the_hour_it_opens(tenant_a):
    midnight = datetime(2024, 3, 1, tzinfo=UTC)
    with tenant_a.context():
        _settle(
            [
                call_record("edge-1", created_at=midnight, cost=Decimal("1"), end_user="z"),
                call_record("edge-2", created_at=midnight - timedelta(microseconds=1)),
                call_record("edge-3", created_at=midnight + timedelta(hours=1)),
            ]
        )
        hours = dict(UsageHourly.objects.filter(feature="direct").values_list("hour", "calls"))
        assert hours == {
            midnight - timedelta(hours=1): 1,
            midnight: 1,
            midnight + timedelta(hours=1): 1,
        }
        assert selectors.dashboard(start=DAY, end=DAY)["totals"]["requests"] == 1
        assert selectors.dashboard(start=AFTER, end=AFTER)["totals"]["cost"] == "1.00000000"
        assert UsageDailyEndUser.objects.get(end_user="z").day == AFTER


@pytest.mark.django_db
def test_late_record_for_an_already_rolled_hour_is_counted(tenant_a):
    with tenant_a.context():
        _settle(varied_records("late", 120, start=START, hours=28))
        before = selectors.dashboard(start=DAY, end=DAY)["totals"]
        # e.g. the sweeper writing a lost call, or a stream that started hours ago
        late = call_record(
            "late-x",
            created_at=datetime(2024, 2, 29, 3, 15, tzinfo=UTC),
            status="lost",
            input_tokens=777,
            cost=Decimal("0.5"),
            end_user="latecomer",
            latency_ms={"total": 42.0},
        )
        services.record_usage(late)
        services.record_usage(late)  # recorded once per call id, counted once
        after = _dashboard_matches_records(DAY, DAY)
        assert after["totals"]["requests"] == before["requests"] + 1
        assert after["totals"]["errors"] == before["errors"] + 1
        assert after["totals"]["input_tokens"] == before["input_tokens"] + 777
        assert Decimal(after["totals"]["cost"]) == Decimal(before["cost"]) + Decimal("0.5")
        assert after["top_users"][0]["end_user"] == "latecomer"


@pytest.mark.django_db
def test_percentiles_from_rollups_are_within_a_bucket_of_the_exact_ones(tenant_a):
    values = [0.004, 0.01, 0.013] + [0.05 * 1.05**i for i in range(250)]
    with tenant_a.context():
        _settle(
            [
                call_record(f"p-{i}", latency_ms={"admission": v}, feature="pct")
                for i, v in enumerate(values)
            ]
        )
        (row,) = [
            p
            for p in selectors.dashboard(start=DAY, end=DAY)["percentiles"]
            if p["stage"] == "admission"
        ]
    ordered = sorted(values)
    ratio = 2 ** (1 / 16)
    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        exact = ordered[math.ceil(q * len(ordered)) - 1]  # nearest rank
        assert exact / ratio - 0.005 <= row[name] <= exact * ratio + 0.005, (name, exact)


@pytest.mark.django_db
def test_each_latency_is_shown_within_the_stated_bound(tenant_a):
    values = (0.0101, 0.7, 1.0, 33.3, 999.0, 65_000.0, 1_000_000.0)
    hour = datetime(2024, 2, 29, 6, tzinfo=UTC)
    with tenant_a.context():
        _settle(
            [
                call_record(f"b-{i}", created_at=hour + timedelta(hours=i), latency_ms={"ttft": v})
                for i, v in enumerate(values)
            ]
        )
        buckets = dict(
            UsageLatencyHourly.objects.filter(stage="ttft", hour__gte=hour).values_list(
                "hour", "bucket"
            )
        )
    for i, value in enumerate(values):
        shown = rollups.bucket_value(buckets[hour + timedelta(hours=i)])
        assert value / 2 ** (1 / 16) <= shown <= value * 2 ** (1 / 16), value


@pytest.mark.django_db
def test_backfill_builds_rollups_for_records_written_before_them(tenant_a):
    with tenant_a.context():
        records = varied_records("old", 150, start=START, hours=28)
        # As the code before rollups wrote them: records only.
        UsageRecord.objects.bulk_create([services._usage_row(r) for r in records])
        assert selectors.dashboard(start=DAY, end=DAY)["totals"]["requests"] == 0
        call_command("rollup_usage", tenant=[tenant_a.slug], since=BEFORE, until=AFTER)
        first = _dashboard_matches_records(BEFORE, AFTER)
        # Rerunning replaces rather than adds; a damaged day is repaired.
        UsageHourly.objects.filter(hour__gte=FIRST_HOUR).update(calls=10**6)
        UsageLatencyHourly.objects.filter(hour__gte=FIRST_HOUR).delete()
        call_command("rollup_usage", tenant=[tenant_a.slug], since=BEFORE, until=AFTER)
        assert _dashboard_matches_records(BEFORE, AFTER) == first


@pytest.mark.django_db
def test_console_and_csv_show_the_rollup_figures(staff, tenant_a):
    with tenant_a.context():
        _settle(varied_records("csv", 60, start=START, hours=28))
        totals = expected_totals(DAY, DAY)
        features = expected_groups(DAY, DAY, "feature")
    query = f"?date_from={DAY}&date_to={DAY}"
    html = staff("viewer").get(f"/t/{tenant_a.slug}/usage/{query}").content.decode()
    assert f'<dd id="total-cost">${totals["cost"]}</dd>' in html
    body = staff("viewer").get(f"/t/{tenant_a.slug}/usage/export.csv{query}").content.decode()
    lines = body.strip().splitlines()
    assert lines[0] == "day,feature,requests,tokens,cost_usd"
    assert sorted(lines[1:]) == sorted(
        f"{DAY},{g['key']},{g['requests']},{g['input_tokens'] + g['output_tokens']},{g['cost']}"
        for g in features
    )


@pytest.mark.django_db
@pytest.mark.parametrize("group_by", GROUPS)
def test_usage_api_figures_equal_the_sums_of_the_records(client, tenant_a, group_by):
    with tenant_a.context():
        _settle(varied_records("api", 80, start=START, hours=28))
        totals = expected_totals(BEFORE, DAY)
        groups = expected_groups(BEFORE, DAY, group_by)
    response = client.get(
        "/api/v1/usage",
        {"from": str(BEFORE), "to": str(DAY), "group_by": group_by},
        **tenant_a.headers(),
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["totals"] == totals
    assert body["groups"] == groups


@pytest.mark.django_db(transaction=True)
def test_rebuild_racing_settlements_counts_every_record_once(fresh_tenant):
    tenant, _ = fresh_tenant
    records = varied_records("race", 400, start=START, hours=28, seed=3)
    done = threading.Event()
    errors: list[BaseException] = []

    def settle() -> None:
        try:
            with schema_context(tenant.schema_name):
                _settle(records, batch=10)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            done.set()
            connection.close()

    def rebuild() -> None:
        try:
            with schema_context(tenant.schema_name):
                while not done.is_set():
                    for day in (BEFORE, DAY, AFTER):
                        rollups.rebuild_day(day)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=settle), threading.Thread(target=rebuild)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    with schema_context(tenant.schema_name):
        assert UsageRecord.objects.count() == len(records)
        _dashboard_matches_records(BEFORE, AFTER)
