"""Reads for the prompt console: features with what serves them, and figures per variant."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Avg, Count, Q, Sum
from django.utils import timezone

from audit.models import Amendment
from prompts.models import Feature, FeatureDeployment, PromptVersion
from usage.models import UsageRecord


def features_overview(days: int = 7) -> list[dict]:
    since = timezone.now() - timedelta(days=days)
    figures = {
        row["feature"]: row
        for row in UsageRecord.objects.filter(created_at__gte=since, endpoint="feature_run")
        .exclude(mode="console")
        .values("feature")
        .annotate(
            runs=Count("id"),
            errors=Count("id", filter=Q(status__in=["failed", "refused"])),
            mean_ms=Avg("total_ms"),
            cost=Sum("cost"),
        )
    }
    deployments = {
        d.feature_id: d for d in FeatureDeployment.objects.select_related("active_version")
    }
    versions = {v.id: v.label for v in PromptVersion.objects.only("id", "label")}
    rows = []
    for feature in Feature.objects.all():
        deployment = deployments.get(feature.id)
        split = [
            {**arm, "label": versions.get(arm["version_id"], "?")}
            for arm in (deployment.split if deployment else [])
        ]
        rows.append(
            {
                "feature": feature,
                "active": deployment.active_version if deployment else None,
                "split": split,
                "figures": figures.get(feature.slug, {}),
            }
        )
    return rows


def variant_figures(feature: Feature, days: int = 30) -> list[dict]:
    """Runs, errors, validation failures, thumbs-up rate, mean latency and cost per version and
    variant that served the feature (API traffic only: console test runs and evaluations are in
    the audit trail, not here)."""
    since = timezone.now() - timedelta(days=days)
    rows = list(
        UsageRecord.objects.filter(
            feature=feature.slug, endpoint="feature_run", created_at__gte=since
        )
        .exclude(prompt_version_id=None)
        .exclude(mode="console")  # test runs and evaluations are not traffic
        .values("prompt_version_id", "variant")
        .annotate(
            runs=Count("id"),
            errors=Count("id", filter=Q(status__in=["failed", "interrupted"])),
            validation_failures=Count("id", filter=Q(error_type="output_validation_error")),
            mean_ms=Avg("total_ms"),
            cost=Sum("cost"),
        )
        .order_by("prompt_version_id", "variant")
    )
    ratings = (
        Amendment.objects.filter(record__feature=feature.slug, record__created_at__gte=since)
        .exclude(rating="")
        .values("record__prompt_version_id", "record__variant")
        .annotate(rated=Count("id"), up=Count("id", filter=Q(rating__in=["up", "4", "5"])))
    )
    by_arm = {(r["record__prompt_version_id"], r["record__variant"]): r for r in ratings}
    labels = dict(PromptVersion.objects.filter(feature=feature).values_list("id", "label"))
    for row in rows:
        rating = by_arm.get((row["prompt_version_id"], row["variant"]))
        row["label"] = labels.get(row["prompt_version_id"], "?")
        row["thumbs_up_rate"] = (rating["up"] / rating["rated"]) if rating else None
    return rows
