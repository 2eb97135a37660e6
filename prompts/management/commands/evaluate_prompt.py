from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import schema_context

from gateway.errors import SwitchboardError
from prompts.evaluation import evaluate
from prompts.models import Feature, PromptVersion
from prompts.services import Actor
from tenants.models import Tenant


def find_version(feature: Feature, ref: str) -> PromptVersion:
    """A version by label ("v3", "default@1.0.0") or number ("3")."""
    version = feature.versions.filter(label=ref).first()
    if version is None and ref.isdigit():
        version = feature.versions.filter(number=int(ref)).first()
    if version is None:
        raise CommandError(f"No version {ref!r} of {feature.slug!r}.")
    return version


class Command(BaseCommand):
    help = (
        "Run a candidate prompt version and the serving one on the feature's evaluation "
        "dataset (real model calls) and exit non-zero when the candidate regresses."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--feature", required=True, help="feature slug")
        parser.add_argument("--candidate", required=True, help='version label or number, e.g. "v3"')
        parser.add_argument("--baseline", help="version to compare with (default: the serving one)")
        parser.add_argument(
            "--max-drop",
            type=float,
            default=0.0,
            help="pass-rate drop, in percentage points, still accepted (default 0)",
        )

    def handle(self, *args, **options):
        tenant = Tenant.objects.select_related("plan").filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant {options['tenant']!r}.")
        with schema_context(tenant.schema_name):
            feature = Feature.objects.filter(slug=options["feature"]).first()
            if feature is None:
                raise CommandError(f"No feature {options['feature']!r} in {tenant.slug!r}.")
            candidate = find_version(feature, options["candidate"])
            baseline = find_version(feature, options["baseline"]) if options["baseline"] else None
            try:
                run = evaluate(
                    tenant=tenant,
                    feature=feature,
                    candidate=candidate,
                    baseline=baseline,
                    actor=Actor(None, "manage.py evaluate_prompt"),
                    max_drop=options["max_drop"] / 100,
                )
            except SwitchboardError as exc:
                raise CommandError(exc.message) from None
            baseline_label = run.baseline.label if run.baseline else None
        self._report(run, candidate.label, baseline_label)
        if run.regression:
            raise CommandError(
                f"Regression: {candidate.label} passes {run.candidate_passed}/{run.total}, "
                f"{baseline_label} passes {run.baseline_passed}/{run.total}."
            )

    def _report(self, run, candidate: str, baseline: str | None) -> None:
        width = max(len(row["case"]) for row in run.results)
        for row in run.results:
            line = f"{row['case']:<{width}}  {candidate}: {_mark(row['candidate'])}"
            if row["baseline"] is not None:
                line += f"  {baseline}: {_mark(row['baseline'])}"
            self.stdout.write(line)
        summary = f"{candidate}: {run.candidate_passed}/{run.total} passed"
        if baseline:
            summary += f"; {baseline}: {run.baseline_passed}/{run.total} passed"
        self.stdout.write(summary)


def _mark(result: dict) -> str:
    return ("pass" if result["passed"] else "FAIL") + f" ({result['detail']})"
