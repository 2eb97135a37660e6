"""Writes for prompts: drafts, publishing, traffic splits, rollback, shipped defaults.

Every change to what serves a feature is one transaction that also writes the change log entry,
so no code path can change a feature without leaving who, when, what and why.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml
from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone

from gateway.errors import Conflict, InvalidRequest, NotFound
from prompts.contracts import OutputContract
from prompts.models import ChangeLogEntry, Feature, FeatureDeployment, PromptVersion
from prompts.rendering import check_templates

DEFAULTS_DIR = Path(__file__).resolve().parent / "defaults"


@dataclass(frozen=True)
class Actor:
    id: int | None = None
    name: str = ""


SYSTEM = Actor(None, "system")


def _log_change(feature, action, before: dict, after: dict, actor: Actor, reason: str) -> None:
    """One entry of the feature's change log (the publish, rollback, split, cache and run-mode
    history the console shows)."""
    ChangeLogEntry.objects.create(
        feature=feature,
        action=action,
        before=before,
        after=after,
        actor_id=actor.id,
        actor_name=actor.name,
        reason=reason,
    )


def _snapshot(deployment: FeatureDeployment) -> dict:
    return {"active_version_id": deployment.active_version_id, "split": deployment.split}


def _deployment(feature: Feature) -> FeatureDeployment:
    deployment, _ = FeatureDeployment.objects.select_for_update().get_or_create(feature=feature)
    return deployment


def invalidate_cache(feature: Feature) -> int:
    """Drop the feature's cached answers and advance its generation (in the caller's
    transaction): a run prepared before the change cannot store an answer the new serving
    state would read. Returns how many entries went."""
    from cache.services import purge_feature

    Feature.objects.filter(pk=feature.pk).update(cache_generation=F("cache_generation") + 1)
    return purge_feature(feature_slug=feature.slug)


def create_version(
    *,
    feature: Feature,
    system: str,
    user_template: str,
    variables: list[str],
    context_template: str = "",
    few_shot: list | None = None,
    negative_examples: list | None = None,
    params: dict | None = None,
    contract: dict | None = None,
    changelog: str = "",
    actor: Actor = SYSTEM,
    source: str = PromptVersion.Source.TENANT,
    label: str | None = None,
) -> PromptVersion:
    """A new draft version (published ones are immutable; edit by making a new draft)."""
    if not isinstance(variables, list) or not all(isinstance(v, str) for v in variables):
        raise InvalidRequest("variables must be a list of names.", param="variables")
    check_templates(
        system=system,
        user_template=user_template,
        context_template=context_template,
        variables=variables,
    )
    OutputContract.from_dict(contract, feature.slug)
    params = dict(params or {})
    unknown = set(params) - {"temperature", "max_tokens", "top_p"}
    if unknown:
        raise InvalidRequest(f"Unknown model parameter {sorted(unknown)[0]!r}.", param="params")
    with transaction.atomic():
        Feature.objects.select_for_update().get(pk=feature.pk)
        number = (feature.versions.aggregate(n=Max("number"))["n"] or 0) + 1
        return PromptVersion.objects.create(
            feature=feature,
            number=number,
            label=label or f"v{number}",
            source=source,
            system=system,
            context_template=context_template,
            user_template=user_template,
            variables=variables,
            few_shot=few_shot or [],
            negative_examples=negative_examples or [],
            params=params,
            contract=contract or {"kind": "text"},
            author_id=actor.id,
            author_name=actor.name,
            changelog=changelog,
        )


def update_draft(*, version: PromptVersion, **fields) -> PromptVersion:
    if version.is_published:
        raise Conflict("Published versions are immutable; create a new version instead.")
    allowed = {
        "system",
        "user_template",
        "context_template",
        "variables",
        "few_shot",
        "negative_examples",
        "params",
        "contract",
        "changelog",
    }
    for name, value in fields.items():
        if name not in allowed:
            raise InvalidRequest(f"Unknown field {name!r}.", param=name)
        setattr(version, name, value)
    check_templates(
        system=version.system,
        user_template=version.user_template,
        context_template=version.context_template,
        variables=version.variables,
    )
    OutputContract.from_dict(version.contract, version.feature.slug)
    version.save()
    return version


def publish(*, version: PromptVersion, actor: Actor, reason: str = "") -> FeatureDeployment:
    """Make ``version`` the one serving its feature (ends any A/B split)."""
    with transaction.atomic():
        deployment = _deployment(version.feature)
        before = _snapshot(deployment)
        if not version.is_published:
            PromptVersion.objects.filter(pk=version.pk).update(published_at=timezone.now())
            version.refresh_from_db()
        deployment.active_version = version
        deployment.split = []
        deployment.save()
        invalidate_cache(version.feature)
        _log_change(
            version.feature,
            ChangeLogEntry.Action.PUBLISH,
            before,
            _snapshot(deployment),
            actor,
            reason,
        )
    return deployment


def set_split(
    *, feature: Feature, split: list[dict], actor: Actor, reason: str = ""
) -> FeatureDeployment:
    """An A/B split: ``[{"version_id", "weight"}]``, weights summing to 100, published versions."""
    if not isinstance(split, list) or not 2 <= len(split) <= 5:
        raise InvalidRequest("A split names 2 to 5 versions.", param="split")
    versions = {
        v.id: v
        for v in feature.versions.filter(
            id__in=[s.get("version_id") for s in split if isinstance(s, dict)]
        )
    }
    cleaned = []
    for index, item in enumerate(split):
        version = versions.get(item.get("version_id") if isinstance(item, dict) else None)
        if version is None or not version.is_published:
            raise InvalidRequest(
                "Every version in a split must be a published version of this feature.",
                param=f"split.{index}.version_id",
            )
        weight = item.get("weight")
        if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= 100:
            raise InvalidRequest(
                "Weights are whole numbers from 0 to 100.", param=f"split.{index}.weight"
            )
        cleaned.append(
            {"version_id": version.id, "weight": weight, "variant": chr(ord("A") + index)}
        )
    if sum(s["weight"] for s in cleaned) != 100:
        raise InvalidRequest("Weights must add up to 100.", param="split")
    if len({s["version_id"] for s in cleaned}) != len(cleaned):
        raise InvalidRequest("A version may appear once in a split.", param="split")
    with transaction.atomic():
        deployment = _deployment(feature)
        before = _snapshot(deployment)
        deployment.split = cleaned
        if deployment.active_version_id is None:
            deployment.active_version_id = cleaned[0]["version_id"]
        deployment.save()
        invalidate_cache(feature)
        _log_change(
            feature, ChangeLogEntry.Action.SPLIT, before, _snapshot(deployment), actor, reason
        )
    return deployment


def rollback(*, feature: Feature, actor: Actor, reason: str = "") -> FeatureDeployment:
    """Restore what served the feature before the latest change (one click, instant)."""
    with transaction.atomic():
        deployment = _deployment(feature)
        last = (
            feature.changes.exclude(action=ChangeLogEntry.Action.ROLLBACK)
            .filter(after=_snapshot(deployment))
            .first()
        )
        if last is None or not last.before.get("active_version_id"):
            raise Conflict("There is no earlier state of this feature to roll back to.")
        before = _snapshot(deployment)
        deployment.active_version_id = last.before["active_version_id"]
        deployment.split = last.before.get("split") or []
        deployment.save()
        invalidate_cache(feature)
        _log_change(
            feature,
            ChangeLogEntry.Action.ROLLBACK,
            before,
            _snapshot(deployment),
            actor,
            reason or f"rollback of change #{last.id}",
        )
    return deployment


CACHE_POLICY_FIELDS = (
    "cache_mode",
    "cache_ttl_seconds",
    "cache_max_distance",
    "cache_personalised",
    "cache_fallback_max_distance",
)


def _cache_policy(feature: Feature) -> dict:
    return {name: getattr(feature, name) for name in CACHE_POLICY_FIELDS}


def set_cache_policy(*, feature: Feature, actor: Actor, reason: str = "", **policy) -> Feature:
    """Change the feature's answer-cache policy; its cached answers are dropped, since they
    were stored under the old one (e.g. shared before the feature became personalised)."""
    unknown = set(policy) - set(CACHE_POLICY_FIELDS)
    if unknown:
        raise InvalidRequest(f"Unknown cache setting {sorted(unknown)[0]!r}.", param="cache")
    if policy.get("cache_mode", feature.cache_mode) not in Feature.CacheMode.values:
        raise InvalidRequest("The cache mode is auto, on or off.", param="cache_mode")
    for name in ("cache_max_distance", "cache_fallback_max_distance"):
        value = policy.get(name, getattr(feature, name))
        if value is not None and not 0 <= value <= 2:
            raise InvalidRequest("A cosine distance is between 0 and 2.", param=name)
    if not 1 <= policy.get("cache_ttl_seconds", feature.cache_ttl_seconds) <= 30 * 86400:
        raise InvalidRequest("The TTL is 1 second to 30 days.", param="cache_ttl_seconds")
    with transaction.atomic():
        feature = Feature.objects.select_for_update().get(pk=feature.pk)
        before = _cache_policy(feature)
        for name, value in policy.items():
            setattr(feature, name, value)
        feature.save(update_fields=list(policy))
        invalidate_cache(feature)
        _log_change(
            feature, ChangeLogEntry.Action.CACHE, before, _cache_policy(feature), actor, reason
        )
    feature.refresh_from_db()
    return feature


def set_async_only(
    *, feature: Feature, async_only: bool, actor: Actor, reason: str = ""
) -> Feature:
    """Make the feature's runs async-only (202 with a job) or not; effective on the next run."""
    with transaction.atomic():
        feature = Feature.objects.select_for_update().get(pk=feature.pk)
        before = {"async_only": feature.async_only}
        feature.async_only = bool(async_only)
        feature.save(update_fields=["async_only"])
        _log_change(
            feature,
            ChangeLogEntry.Action.RUN_MODE,
            before,
            {"async_only": feature.async_only},
            actor,
            reason,
        )
    return feature


# --- shipped defaults ---------------------------------------------------------------------------


def read_default_files() -> list[dict]:
    specs = []
    for path in sorted(DEFAULTS_DIR.glob("*.yaml")):
        spec = yaml.safe_load(path.read_text())
        spec["_file"] = path.name
        specs.append(spec)
    return specs


def load_defaults() -> list[str]:
    """Load the shipped defaults into the current tenant schema (idempotent).

    A feature whose serving version is a shipped default follows the newest default; a feature
    serving the tenant's own version keeps it (the new default is available as a version).
    Shipped evaluation cases are added by name, so a tenant's edits to the dataset stay.
    Returns what changed.
    """
    # evaluation runs features through prompts.runs, which imports this module
    from prompts.evaluation import load_default_cases

    changed = []
    for spec in read_default_files():
        slug, semver = spec["feature"], str(spec["version"])
        with transaction.atomic():
            feature, _ = Feature.objects.get_or_create(
                slug=slug,
                defaults={
                    "name": spec.get("name", slug),
                    "description": spec.get("description", ""),
                    "model_alias": spec.get("model_alias", "fast"),
                    "uses_retrieval": bool(spec.get("uses_retrieval")),
                    "allow_degraded": bool(spec.get("allow_degraded", True)),
                    "async_only": bool(spec.get("async_only", False)),
                    "degraded_text": spec.get("degraded_text")
                    or Feature._meta.get_field("degraded_text").default,
                },
            )
            added = load_default_cases(feature, spec.get("eval") or [])
            if added:
                changed.append(f"{slug}: {added} evaluation case(s)")
            label = f"default@{semver}"
            if feature.versions.filter(label=label).exists():
                continue
            version = create_version(
                feature=feature,
                system=spec["system"],
                user_template=spec["user_template"],
                context_template=spec.get("context_template", ""),
                variables=spec.get("variables", []),
                few_shot=spec.get("few_shot"),
                negative_examples=spec.get("negative_examples"),
                params=spec.get("params"),
                contract=spec.get("contract"),
                changelog=spec.get("changelog", ""),
                source=PromptVersion.Source.DEFAULT,
                label=label,
            )
            deployment = FeatureDeployment.objects.filter(feature=feature).first()
            serving = deployment.active_version if deployment else None
            if serving is None or (
                serving.source == PromptVersion.Source.DEFAULT and not deployment.split
            ):
                publish(version=version, actor=SYSTEM, reason=f"shipped default {semver}")
            else:
                PromptVersion.objects.filter(pk=version.pk).update(published_at=timezone.now())
            Feature.objects.filter(pk=feature.pk).update(default_version=semver)
            changed.append(f"{slug}@{semver}")
    return changed


def customise_from(*, version: PromptVersion, actor: Actor) -> PromptVersion:
    """A tenant's own draft, starting from an existing (e.g. default) version."""
    return create_version(
        feature=version.feature,
        system=version.system,
        user_template=version.user_template,
        context_template=version.context_template,
        variables=list(version.variables),
        few_shot=version.few_shot,
        negative_examples=version.negative_examples,
        params=version.params,
        contract=version.contract,
        changelog=f"Started from {version.label}",
        actor=actor,
    )


# --- choosing the version for a run --------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    version: PromptVersion
    variant: str


def bucket(feature_slug: str, end_user: str) -> int:
    """0-9999, stable per feature and end user (the same user always lands in the same arm)."""
    digest = hashlib.sha256(f"{feature_slug}:{end_user}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10_000


def choose_version(feature: Feature, end_user: str, salt: str = "") -> Choice:
    deployment = (
        FeatureDeployment.objects.filter(feature=feature).select_related("active_version").first()
    )
    if deployment is None or deployment.active_version is None:
        raise NotFound(
            f"The feature {feature.slug!r} has no published version.",
            param="slug",
            code="feature_not_published",
        )
    if not deployment.split:
        return Choice(deployment.active_version, "")
    point = bucket(feature.slug, end_user or salt)
    cumulative = 0
    chosen = deployment.split[-1]
    for arm in deployment.split:
        cumulative += arm["weight"] * 100
        if point < cumulative:
            chosen = arm
            break
    version = PromptVersion.objects.get(pk=chosen["version_id"])
    return Choice(version, chosen["variant"])
