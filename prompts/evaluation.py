"""Evaluation before publishing: run a candidate version and the serving one on the feature's
dataset (inputs with expectations) through the real model path, and compare pass rates.

Each case is one ordinary feature run through the gateway's entry point (mode ``console``,
variant ``eval``), so limits, guards, usage and audit apply exactly as for any other call. Cases
run one after another: a dataset is small (at most ``MAX_CASES``) and sequential runs keep the
provider's rate limits and the comparison's order predictable.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import async_to_sync
from django.db import transaction

from gateway.errors import InvalidRequest, SwitchboardError
from prompts.models import EvalCase, EvalRun, Feature, FeatureDeployment, PromptVersion
from prompts.runs import execute_run
from prompts.services import SYSTEM, Actor

MAX_CASES = 50
EVAL_VARIANT = "eval"
_EXCERPT = 500


# --- the dataset ---------------------------------------------------------------------------------


def check_expectation(check_kind: str, expected: Any) -> Any:
    """The expectation a check needs, or a 400 naming what is wrong."""
    if check_kind not in EvalCase.Check.values:
        raise InvalidRequest(f"Unknown check {check_kind!r}.", param="check_kind")
    if check_kind in (EvalCase.Check.LABEL, EvalCase.Check.CONTAINS):
        if not isinstance(expected, str) or not expected.strip():
            raise InvalidRequest("This check expects a non-empty text.", param="expected")
        return expected.strip()
    if check_kind == EvalCase.Check.FIELDS:
        if not isinstance(expected, dict) or not expected:
            raise InvalidRequest(
                'This check expects a JSON object of fields, e.g. {"currency": "EUR"}.',
                param="expected",
            )
        return expected
    return None


def add_case(
    *,
    feature: Feature,
    name: str,
    input: dict,
    check_kind: str,
    expected: Any = None,
    source: str = EvalCase.Source.TENANT,
) -> EvalCase:
    """Add one case to the feature's evaluation dataset."""
    name = (name or "").strip()
    if not name:
        raise InvalidRequest("A case needs a name.", param="name")
    if not isinstance(input, dict):
        raise InvalidRequest("A case's input is an object of variables.", param="input")
    expected = check_expectation(check_kind, expected)
    if feature.eval_cases.filter(enabled=True).count() >= MAX_CASES:
        raise InvalidRequest(f"A dataset holds at most {MAX_CASES} cases.", param="name")
    if feature.eval_cases.filter(name=name).exists():
        raise InvalidRequest(f"There is already a case named {name!r}.", param="name")
    return EvalCase.objects.create(
        feature=feature,
        name=name,
        input=input,
        check_kind=check_kind,
        expected=expected,
        source=source,
    )


def remove_case(*, case: EvalCase) -> None:
    """Remove a case; a shipped one is disabled instead, so reloading defaults keeps it out."""
    if case.source == EvalCase.Source.DEFAULT:
        EvalCase.objects.filter(pk=case.pk).update(enabled=False)
    else:
        case.delete()


def load_default_cases(feature: Feature, cases: list[dict]) -> int:
    """Add the shipped cases a feature lacks (by name); returns how many were added."""
    added = 0
    for spec in cases or []:
        if feature.eval_cases.filter(name=spec["name"]).exists():
            continue
        add_case(
            feature=feature,
            name=spec["name"],
            input=spec.get("input") or {},
            check_kind=spec["check"],
            expected=spec.get("expected"),
            source=EvalCase.Source.DEFAULT,
        )
        added += 1
    return added


# --- judging one output --------------------------------------------------------------------------


def _as_text(output: Any) -> str:
    return output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)


def judge(check_kind: str, expected: Any, output: Any) -> tuple[bool, str]:
    """Whether a valid (contract-checked) output meets the case's expectation, and why not."""
    if check_kind == EvalCase.Check.VALID:
        return True, "valid"
    if check_kind == EvalCase.Check.LABEL:
        label = output.get("label") if isinstance(output, dict) else _as_text(output).strip()
        if label == expected:
            return True, f"label {label!r}"
        return False, f"label {label!r}, expected {expected!r}"
    if check_kind == EvalCase.Check.CONTAINS:
        if expected.casefold() in _as_text(output).casefold():
            return True, f"contains {expected!r}"
        return False, f"does not contain {expected!r}"
    if check_kind == EvalCase.Check.FIELDS:
        if not isinstance(output, dict):
            return False, "the output is not a JSON object"
        for name, value in expected.items():
            if name not in output:
                return False, f"{name}: missing, expected {value!r}"
            if output[name] != value:
                return False, f"{name}: {output[name]!r}, expected {value!r}"
        return True, f"{len(expected)} field(s) equal"
    return False, f"unknown check {check_kind!r}"


# --- running versions on the dataset -------------------------------------------------------------


@dataclass
class CaseResult:
    passed: bool
    detail: str
    output: str = ""
    call_id: str = ""

    def to_dict(self) -> dict:
        return {
            "passed": self.passed,
            "detail": self.detail,
            "output": self.output,
            "call_id": self.call_id,
        }


@dataclass
class VersionResults:
    version: PromptVersion
    results: list[CaseResult] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self.results)


async def _run_case(
    *, tenant, feature: Feature, version: PromptVersion, case: EvalCase, actor: Actor
) -> CaseResult:
    try:
        _, outcome = await execute_run(
            tenant=tenant,
            slug=feature.slug,
            data=case.input,
            end_user="",
            request_id=f"eval_{uuid.uuid4().hex}",
            mode="console",
            staff=actor,
            version=version,
            variant=EVAL_VARIANT,
        )
    except SwitchboardError as exc:
        return CaseResult(False, f"{exc.code}: {exc.message}")
    output = outcome.parsed if outcome.parsed is not None else outcome.content
    excerpt = _as_text(output)[:_EXCERPT]
    if outcome.degraded:
        return CaseResult(
            False, "degraded answer (no model output)", excerpt, outcome.record.call_id
        )
    passed, detail = judge(case.check_kind, case.expected, output)
    return CaseResult(passed, detail, excerpt, outcome.record.call_id)


async def _run_versions(
    *, tenant, feature: Feature, versions: list[PromptVersion], cases: list[EvalCase], actor: Actor
) -> list[VersionResults]:
    runs = []
    for version in versions:
        results = VersionResults(version)
        for case in cases:
            results.results.append(
                await _run_case(
                    tenant=tenant, feature=feature, version=version, case=case, actor=actor
                )
            )
        runs.append(results)
    return runs


def serving_version(feature: Feature) -> PromptVersion | None:
    """The version that serves the feature now (the first arm's, during an A/B split)."""
    deployment = FeatureDeployment.objects.filter(feature=feature).first()
    if deployment is None:
        return None
    if deployment.split:
        return PromptVersion.objects.filter(pk=deployment.split[0]["version_id"]).first()
    return deployment.active_version


def evaluate(
    *,
    tenant,
    feature: Feature,
    candidate: PromptVersion,
    baseline: PromptVersion | None = None,
    actor: Actor = SYSTEM,
    max_drop: float = 0.0,
) -> EvalRun:
    """Run ``candidate`` and ``baseline`` (default: the serving version) on the feature's
    dataset and record the comparison. A regression is a candidate pass rate more than
    ``max_drop`` (a fraction, 0 by default) below the baseline's.

    Runs in the tenant's schema (the caller has selected it); makes real model calls.
    """
    if candidate.feature_id != feature.id:
        raise InvalidRequest("The candidate is not a version of this feature.", param="candidate")
    cases = list(feature.eval_cases.filter(enabled=True))
    if not cases:
        raise InvalidRequest(
            f"The feature {feature.slug!r} has no evaluation cases.", param="feature"
        )
    if baseline is None:
        baseline = serving_version(feature)
    if baseline is not None and baseline.pk == candidate.pk:
        baseline = None
    versions = [candidate] + ([baseline] if baseline else [])
    # the gateway reads the tenant's plan on the event loop, where no query may run
    _ = tenant.plan
    outcome = async_to_sync(_run_versions)(
        tenant=tenant, feature=feature, versions=versions, cases=cases, actor=actor
    )
    mine, theirs = outcome[0], (outcome[1] if baseline else None)
    total = len(cases)
    regression = bool(theirs) and (theirs.passed - mine.passed) / total > max_drop
    rows = [
        {
            "case": case.name,
            "check": case.check_kind,
            "candidate": mine.results[i].to_dict(),
            "baseline": theirs.results[i].to_dict() if theirs else None,
        }
        for i, case in enumerate(cases)
    ]
    with transaction.atomic():
        return EvalRun.objects.create(
            feature=feature,
            candidate=candidate,
            baseline=baseline,
            total=total,
            candidate_passed=mine.passed,
            baseline_passed=theirs.passed if theirs else None,
            regression=regression,
            results=rows,
            actor_id=actor.id,
            actor_name=actor.name,
        )
