"""Evaluation before publishing: the dataset, judging outputs, candidate vs serving through the
real model path (the simulator), the console's side-by-side view and the command's exit code."""

import json

import pytest
from django.core.management import CommandError, call_command

from gateway.errors import InvalidRequest
from prompts import evaluation, services
from prompts.models import EvalCase, EvalRun, Feature
from prompts.selectors import variant_figures
from tests.fixtures_gateway import wait_for
from usage.models import UsageRecord

LABELS = {
    "double charge": "billing",
    "webhook failures": "technical",
    "locked out": "account",
    "partnership": "other",
}


def _answers(labels: list[str]) -> list[str]:
    return [json.dumps({"label": label}) for label in labels]


@pytest.mark.parametrize(
    ("check", "expected", "output", "passed"),
    [
        ("label", "billing", {"label": "billing"}, True),
        ("label", "billing", {"label": "technical"}, False),
        ("label", "yes", "yes", True),
        ("fields", {"currency": "EUR", "total": 10.0}, {"currency": "EUR", "total": 10}, True),
        ("fields", {"currency": "EUR"}, {"currency": "USD"}, False),
        ("fields", {"currency": "EUR"}, {"total": 1}, False),
        ("fields", {"currency": "EUR"}, "EUR", False),
        ("contains", "Export", "- the export button fails", True),
        ("contains", "refund", {"answer": "No refund possible"}, True),
        ("contains", "refund", "nothing relevant", False),
        ("valid", None, {"anything": 1}, True),
    ],
)
def test_judge(check, expected, output, passed):
    assert evaluation.judge(check, expected, output)[0] is passed


def test_judge_names_the_mismatched_field():
    passed, detail = evaluation.judge("fields", {"currency": "EUR"}, {"currency": "USD"})
    assert not passed and detail == "currency: 'USD', expected 'EUR'"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("check", "expected"),
    [("label", ""), ("fields", "EUR"), ("fields", {}), ("contains", None), ("exact", "x")],
)
def test_a_case_needs_the_expectation_its_check_uses(tenant_a, check, expected):
    with tenant_a.context():
        feature = Feature.objects.get(slug="invoice-extractor")
        with pytest.raises(InvalidRequest) as raised:
            evaluation.add_case(
                feature=feature, name="bad", input={}, check_kind=check, expected=expected
            )
    assert raised.value.param in ("expected", "check_kind")


@pytest.mark.django_db
def test_shipped_cases_load_once_and_a_removed_one_stays_removed(tenant_a):
    with tenant_a.context():
        feature = Feature.objects.get(slug="ticket-classifier")
        shipped = set(feature.eval_cases.values_list("name", flat=True))
        assert shipped == set(LABELS)
        assert services.load_defaults() == []
        case = feature.eval_cases.get(name="partnership")
        evaluation.remove_case(case=case)
        assert services.load_defaults() == []
        assert not feature.eval_cases.get(name="partnership").enabled
        own = evaluation.add_case(
            feature=feature, name="mine", input={}, check_kind="valid", expected=None
        )
        evaluation.remove_case(case=own)
        assert not feature.eval_cases.filter(name="mine").exists()
        EvalCase.objects.filter(pk=case.pk).update(enabled=True)


def _candidate(tenant):
    with tenant.context():
        feature = Feature.objects.get(slug="ticket-classifier")
        serving = feature.deployment.active_version
        return feature, serving, services.customise_from(version=serving, actor=services.SYSTEM)


@pytest.mark.django_db(transaction=True)
def test_better_candidate_passes_and_the_command_exits_zero(features, tenant_a, simulator, capsys):
    feature, serving, candidate = _candidate(tenant_a)
    # The candidate runs first, on the scripted answers; the serving version then gets the
    # simulator's default (the first label, "billing") for every case.
    simulator.script(_answers(list(LABELS.values())))
    call_command(
        "evaluate_prompt", tenant=tenant_a.slug, feature=feature.slug, candidate=candidate.label
    )
    out = capsys.readouterr().out
    assert f"{candidate.label}: 4/4 passed; {serving.label}: 1/4 passed" in out
    with tenant_a.context():
        run = EvalRun.objects.get(candidate=candidate)
    assert run.baseline_id == serving.id and not run.regression
    assert simulator.request_count("/v1/chat/completions") == 8
    sent = [r["json"] for r in simulator.requests]
    assert sent[0]["messages"][-1]["content"].count("billed my card twice") == 1
    with tenant_a.context():  # recorded like any call, but kept out of the A/B figures
        recorded = wait_for(
            lambda: (
                UsageRecord.objects.filter(variant="eval", prompt_version_id=candidate.id)
                .exclude(status="")
                .count()
                == 4
            )
        )
        assert recorded
        assert all(row["variant"] != "eval" for row in variant_figures(feature))


@pytest.mark.django_db(transaction=True)
def test_worse_candidate_is_a_regression_and_the_command_fails(features, tenant_a, simulator):
    feature, _, candidate = _candidate(tenant_a)
    simulator.script(_answers(["technical", "account", "other", "billing"]))
    with pytest.raises(CommandError, match="Regression"):
        call_command(
            "evaluate_prompt",
            tenant=tenant_a.slug,
            feature=feature.slug,
            candidate=str(candidate.number),
        )
    with tenant_a.context():
        run = EvalRun.objects.get(candidate=candidate)
    assert (run.candidate_passed, run.baseline_passed, run.regression) == (0, 1, True)
    assert run.results[0]["candidate"]["detail"] == "label 'technical', expected 'billing'"


@pytest.mark.django_db(transaction=True)
def test_a_tolerated_drop_is_not_a_regression(features, tenant_a, simulator):
    feature, _, candidate = _candidate(tenant_a)
    simulator.script(_answers(["technical", "account", "other", "billing"]))
    call_command(
        "evaluate_prompt",
        tenant=tenant_a.slug,
        feature=feature.slug,
        candidate=candidate.label,
        max_drop=25,
    )


@pytest.mark.django_db(transaction=True)
def test_failed_runs_count_as_failures(features, tenant_a, simulator, simulator_b):
    feature, _, candidate = _candidate(tenant_a)
    simulator.set_fault("down")
    simulator_b.set_fault("down")
    with tenant_a.context():
        run = evaluation.evaluate(tenant=tenant_a.tenant, feature=feature, candidate=candidate)
    assert run.candidate_passed == 0 and run.baseline_passed == 0 and not run.regression
    assert run.results[0]["candidate"]["detail"].startswith("upstream_unavailable")


def test_command_refuses_unknown_names(db, tenant_a):
    with pytest.raises(CommandError, match="No tenant"):
        call_command("evaluate_prompt", tenant="nope", feature="x", candidate="v1")
    with pytest.raises(CommandError, match="No feature"):
        call_command("evaluate_prompt", tenant=tenant_a.slug, feature="nope", candidate="v1")
    with pytest.raises(CommandError, match="No version"):
        call_command(
            "evaluate_prompt", tenant=tenant_a.slug, feature="summarizer", candidate="v999"
        )


@pytest.mark.django_db(transaction=True)
def test_console_shows_candidate_and_serving_side_by_side(features, staff, tenant_a, simulator):
    feature, serving, candidate = _candidate(tenant_a)
    simulator.script(_answers(list(LABELS.values())))
    url = f"/t/{tenant_a.slug}/prompts/{feature.slug}/versions/{candidate.id}/"
    response = staff("editor").post(url + "evaluate/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    html = response.content.decode()
    assert "4/4 (100%)" in html and "1/4 (25%)" in html
    assert candidate.label in html and serving.label in html
    assert "no regression" in html
    page = staff("viewer").get(url).content.decode()  # the result stays on the version's page
    assert "4/4 (100%)" in page


def test_read_only_roles_cannot_evaluate_or_change_the_dataset(db, staff, tenant_a):
    feature, _, candidate = _candidate(tenant_a)
    base = f"/t/{tenant_a.slug}/prompts/{feature.slug}/"
    for role in ("viewer", "reviewer"):
        client = staff(role)
        assert client.get(base + "evaluation/").status_code == 200
        assert client.post(base + f"versions/{candidate.id}/evaluate/").status_code == 403
        added = client.post(
            base + "evaluation/",
            {"name": "x", "input": "{}", "check_kind": "valid", "expected": ""},
        )
        assert added.status_code == 403
        with tenant_a.context():
            case = feature.eval_cases.first()
        assert client.post(base + f"evaluation/{case.id}/remove/").status_code == 403


def test_editor_adds_a_case_and_a_bad_one_is_refused(db, staff, tenant_a):
    client = staff("editor")
    base = f"/t/{tenant_a.slug}/prompts/invoice-extractor/evaluation/"
    good = {
        "name": "euro total",
        "input": '{"invoice_text": "Total EUR 10.00"}',
        "check_kind": "fields",
        "expected": '{"currency": "EUR", "total_amount": 10.0}',
    }
    assert client.post(base, good).status_code == 302
    with tenant_a.context():
        case = EvalCase.objects.get(feature__slug="invoice-extractor", name="euro total")
    assert case.expected == {"currency": "EUR", "total_amount": 10.0}
    assert client.post(base, good).status_code == 400  # the name is taken
    bad = {**good, "name": "other", "expected": "EUR"}
    response = client.post(base, bad)
    assert response.status_code == 400 and "JSON object of fields" in response.content.decode()
