"""The prompt console: features, versions, live preview, diff, test runs, publish, A/B, rollback.

Editors and admins change; reviewers and viewers read (403 on any change)."""

from __future__ import annotations

import difflib
import json

from asgiref.sync import async_to_sync
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from gateway.errors import SwitchboardError
from prompts import evaluation, selectors, services
from prompts.forms import CachePolicyForm, EvalCaseForm, RunModeForm, SplitForm, VersionForm
from prompts.models import EvalCase, EvalRun, Feature, PromptVersion
from prompts.rendering import ContextChunk, render_messages
from prompts.runs import execute_run
from tenants.decorators import EDIT_ROLES, READ_ROLES, tenant_view


def _actor(request) -> services.Actor:
    return services.Actor(request.user.id, request.user.get_username())


@tenant_view(*READ_ROLES)
def feature_list(request):
    return render(
        request,
        "prompts/feature_list.html",
        {"rows": selectors.features_overview(), "can_edit": request.role in EDIT_ROLES},
    )


@tenant_view(*READ_ROLES)
def feature_detail(request, feature_slug: str):
    feature = get_object_or_404(Feature, slug=feature_slug)
    deployment = getattr(feature, "deployment", None)
    versions = feature.versions.all()
    context = {
        "feature": feature,
        "deployment": deployment,
        "versions": versions,
        "published": [v for v in versions if v.is_published],
        "changes": feature.changes.all()[:20],
        "figures": selectors.variant_figures(feature),
        "can_edit": request.role in EDIT_ROLES,
        "split_form": SplitForm(feature=feature),
        "cache_form": CachePolicyForm(instance=feature),
        "run_mode_form": RunModeForm(initial={"async_only": feature.async_only}),
    }
    return render(request, "prompts/feature_detail.html", context)


@tenant_view(*EDIT_ROLES)
@require_POST
def cache_policy(request, feature_slug: str):
    """The feature's answer-cache policy (saving it drops the feature's cached answers)."""
    feature = get_object_or_404(Feature, slug=feature_slug)
    form = CachePolicyForm(request.POST, instance=Feature.objects.get(pk=feature.pk))
    if not form.is_valid():
        return HttpResponseBadRequest("; ".join(e for errs in form.errors.values() for e in errs))
    try:
        services.set_cache_policy(
            feature=feature,
            actor=_actor(request),
            reason=form.cleaned_data.get("reason", ""),
            **form.policy(),
        )
        messages.success(request, "Cache policy saved; the feature's cached answers were dropped.")
    except SwitchboardError as exc:
        messages.error(request, exc.message)
    return redirect("prompts:feature_detail", slug=request.tenant.slug, feature_slug=feature.slug)


@tenant_view(*EDIT_ROLES)
@require_POST
def run_mode(request, feature_slug: str):
    """Whether the feature's runs are async only (effective on the next run)."""
    feature = get_object_or_404(Feature, slug=feature_slug)
    form = RunModeForm(request.POST)
    form.is_valid()  # a checkbox and a free-text reason: nothing to refuse
    services.set_async_only(
        feature=feature,
        async_only=form.cleaned_data.get("async_only", False),
        actor=_actor(request),
        reason=form.cleaned_data.get("reason", ""),
    )
    messages.success(request, "Run mode saved.")
    return redirect("prompts:feature_detail", slug=request.tenant.slug, feature_slug=feature.slug)


@tenant_view(*EDIT_ROLES)
@require_POST
def version_new(request, feature_slug: str):
    feature = get_object_or_404(Feature, slug=feature_slug)
    base = get_object_or_404(PromptVersion, feature=feature, pk=request.POST.get("from"))
    draft = services.customise_from(version=base, actor=_actor(request))
    return redirect(
        "prompts:version_edit",
        slug=request.tenant.slug,
        feature_slug=feature.slug,
        version_id=draft.id,
    )


def _sample_input(version: PromptVersion) -> str:
    return json.dumps({name: f"example {name}" for name in version.variables}, indent=2)


@tenant_view(*READ_ROLES)
def version_edit(request, feature_slug: str, version_id: int):
    feature = get_object_or_404(Feature, slug=feature_slug)
    version = get_object_or_404(PromptVersion, feature=feature, pk=version_id)
    form = VersionForm(instance=version)
    if request.method == "POST":
        if request.role not in EDIT_ROLES:
            return render(request, "403.html", status=403)
        form = VersionForm(request.POST, instance=version)
        if form.is_valid():
            try:
                services.update_draft(version=version, **form.version_fields())
            except SwitchboardError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, f"Draft {version.label} saved.")
                return redirect(
                    "prompts:version_edit",
                    slug=request.tenant.slug,
                    feature_slug=feature.slug,
                    version_id=version.id,
                )
    context = {
        "feature": feature,
        "version": version,
        "form": form,
        "sample": _sample_input(version),
        "can_edit": request.role in EDIT_ROLES,
        "eval_run": EvalRun.objects.filter(candidate=version)
        .select_related("candidate", "baseline")
        .first(),
        "case_count": feature.eval_cases.filter(enabled=True).count(),
    }
    return render(request, "prompts/version_edit.html", context, status=400 if form.errors else 200)


@tenant_view(*READ_ROLES)
@require_POST
def preview(request, feature_slug: str, version_id: int):
    """Render the (unsaved) form with sample input: no model call."""
    feature = get_object_or_404(Feature, slug=feature_slug)
    version = get_object_or_404(PromptVersion, feature=feature, pk=version_id)
    form = VersionForm(request.POST, instance=PromptVersion(feature=feature))
    error, rendered = None, []
    if form.is_valid():
        candidate = PromptVersion(feature=feature, **form.version_fields())
        try:
            sample = json.loads(request.POST.get("sample") or "{}")
            context = [
                ContextChunk(
                    id="doc-1", title="Sample document", text="Retrieved text appears here."
                )
            ]
            rendered = render_messages(
                candidate, sample, context=context if feature.uses_retrieval else None
            )
        except ValueError:
            error = "The sample input is not valid JSON."
        except SwitchboardError as exc:
            error = exc.message
    else:
        error = "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
    return render(
        request,
        "prompts/_preview.html",
        {"messages_rendered": rendered, "error": error, "version": version},
    )


@tenant_view(*EDIT_ROLES)
@require_POST
def test_run(request, feature_slug: str, version_id: int):
    """A real model call from the console (limits apply; recorded as a console test)."""
    feature = get_object_or_404(Feature, slug=feature_slug)
    version = get_object_or_404(PromptVersion, feature=feature, pk=version_id)
    try:
        data = json.loads(request.POST.get("sample") or "{}")
        _, outcome = async_to_sync(execute_run)(
            tenant=request.tenant,
            slug=feature.slug,
            data=data,
            end_user="",
            request_id=request.request_id,
            mode="console",
            staff=_actor(request),
            version=version,
        )
        result = {
            "output": outcome.parsed if outcome.parsed is not None else outcome.content,
            "deployment": outcome.record.deployment,
            "degraded": outcome.degraded,
            "tokens": outcome.record.input_tokens + outcome.record.output_tokens,
            "cost": outcome.record.cost,
            "ms": outcome.record.latency_ms.get("total"),
        }
        error = None
    except ValueError:
        result, error = None, "The sample input is not valid JSON."
    except SwitchboardError as exc:
        result, error = None, f"{exc.code}: {exc.message}"
    return render(request, "prompts/_test_run.html", {"result": result, "error": error})


@tenant_view(*EDIT_ROLES)
@require_POST
def publish(request, feature_slug: str, version_id: int):
    feature = get_object_or_404(Feature, slug=feature_slug)
    version = get_object_or_404(PromptVersion, feature=feature, pk=version_id)
    services.publish(version=version, actor=_actor(request), reason=request.POST.get("reason", ""))
    messages.success(request, f"{version.label} now serves {feature.slug}.")
    return redirect("prompts:feature_detail", slug=request.tenant.slug, feature_slug=feature.slug)


@tenant_view(*EDIT_ROLES)
@require_POST
def rollback(request, feature_slug: str):
    feature = get_object_or_404(Feature, slug=feature_slug)
    try:
        services.rollback(
            feature=feature, actor=_actor(request), reason=request.POST.get("reason", "")
        )
        messages.success(request, "Rolled back.")
    except SwitchboardError as exc:
        messages.error(request, exc.message)
    return redirect("prompts:feature_detail", slug=request.tenant.slug, feature_slug=feature.slug)


@tenant_view(*EDIT_ROLES)
@require_POST
def set_split(request, feature_slug: str):
    feature = get_object_or_404(Feature, slug=feature_slug)
    form = SplitForm(request.POST, feature=feature)
    if not form.is_valid():
        return HttpResponseBadRequest("; ".join(e for errs in form.errors.values() for e in errs))
    try:
        services.set_split(
            feature=feature,
            split=form.split(),
            actor=_actor(request),
            reason=form.cleaned_data.get("reason", ""),
        )
        messages.success(request, "Traffic split saved.")
    except SwitchboardError as exc:
        messages.error(request, exc.message)
    return redirect("prompts:feature_detail", slug=request.tenant.slug, feature_slug=feature.slug)


@tenant_view(*READ_ROLES)
def diff(request, feature_slug: str):
    feature = get_object_or_404(Feature, slug=feature_slug)
    versions = {v.id: v for v in feature.versions.all()}
    try:
        a = versions[int(request.GET.get("a", 0))]
        b = versions[int(request.GET.get("b", 0))]
    except (KeyError, ValueError):
        return HttpResponseBadRequest("Choose two versions of this feature.")
    sections = []
    for name in ("system", "context_template", "user_template"):
        table = difflib.HtmlDiff(wrapcolumn=70).make_table(
            getattr(a, name).splitlines(), getattr(b, name).splitlines(), a.label, b.label
        )
        sections.append((name, table))
    for name in ("variables", "params", "contract", "few_shot"):
        left = json.dumps(getattr(a, name), indent=2, sort_keys=True).splitlines()
        right = json.dumps(getattr(b, name), indent=2, sort_keys=True).splitlines()
        sections.append(
            (name, difflib.HtmlDiff(wrapcolumn=70).make_table(left, right, a.label, b.label))
        )
    return render(
        request,
        "prompts/diff.html",
        {"feature": feature, "a": a, "b": b, "sections": sections, "versions": versions.values()},
    )


@tenant_view(*READ_ROLES)
def eval_dataset(request, feature_slug: str):
    """The feature's evaluation cases and recent evaluations; editors add cases."""
    feature = get_object_or_404(Feature, slug=feature_slug)
    form = EvalCaseForm()
    if request.method == "POST":
        if request.role not in EDIT_ROLES:
            raise PermissionDenied("Your role in this tenant does not allow this.")
        form = EvalCaseForm(request.POST)
        if form.is_valid():
            try:
                evaluation.add_case(feature=feature, **form.cleaned_data)
            except SwitchboardError as exc:
                form.add_error(exc.param if exc.param in form.fields else None, exc.message)
            else:
                messages.success(request, f"Case {form.cleaned_data['name']!r} added.")
                return redirect(
                    "prompts:eval_dataset", slug=request.tenant.slug, feature_slug=feature.slug
                )
    context = {
        "feature": feature,
        "cases": feature.eval_cases.filter(enabled=True),
        "runs": feature.eval_runs.select_related("candidate", "baseline")[:10],
        "form": form,
        "can_edit": request.role in EDIT_ROLES,
    }
    return render(request, "prompts/eval_dataset.html", context, status=400 if form.errors else 200)


@tenant_view(*EDIT_ROLES)
@require_POST
def eval_case_remove(request, feature_slug: str, case_id: int):
    feature = get_object_or_404(Feature, slug=feature_slug)
    case = get_object_or_404(EvalCase, feature=feature, pk=case_id, enabled=True)
    evaluation.remove_case(case=case)
    messages.success(request, f"Case {case.name!r} removed.")
    return redirect("prompts:eval_dataset", slug=request.tenant.slug, feature_slug=feature.slug)


@tenant_view(*EDIT_ROLES)
@require_POST
def evaluate(request, feature_slug: str, version_id: int):
    """Run this version and the serving one on the dataset (real model calls), side by side."""
    feature = get_object_or_404(Feature, slug=feature_slug)
    version = get_object_or_404(PromptVersion, feature=feature, pk=version_id)
    run, error = None, None
    try:
        run = evaluation.evaluate(
            tenant=request.tenant, feature=feature, candidate=version, actor=_actor(request)
        )
    except SwitchboardError as exc:
        error = exc.message
    if not request.htmx:
        if error:
            messages.error(request, error)
        return redirect(
            "prompts:version_edit",
            slug=request.tenant.slug,
            feature_slug=feature.slug,
            version_id=version.id,
        )
    return render(request, "prompts/_evaluation.html", {"eval_run": run, "error": error})
