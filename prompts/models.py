"""Tenant-schema prompts as configuration: features, immutable published versions, the traffic
split between them, and the change log of every publish, weight change and rollback."""

from django.db import models
from django.utils import timezone


class Feature(models.Model):
    class ContractKind(models.TextChoices):
        TEXT = "text", "Free text"
        JSON_SCHEMA = "json_schema", "JSON Schema"
        CLASSIFICATION = "classification", "Classification"

    class CacheMode(models.TextChoices):
        AUTO = "auto", "Auto (only deterministic calls: temperature 0, no tools)"
        ON = "on", "On"
        OFF = "off", "Off"

    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    model_alias = models.CharField(max_length=200, default="fast")
    uses_retrieval = models.BooleanField(default=False)
    allow_degraded = models.BooleanField(default=True)
    degraded_text = models.TextField(
        default="This answer is temporarily unavailable. Please try again in a few minutes."
    )
    refuse_injection = models.BooleanField(default=False)
    # Long work: runs answer 202 with a job (a run that asks for sync or stream is a 400).
    async_only = models.BooleanField(default=False)
    default_version = models.CharField(max_length=20, blank=True)  # semver of the shipped file
    # The answer cache (cache app): policy, and a generation that publish, rollback, a split
    # and a policy change advance, so an answer computed before them is never stored under
    # keys the new serving state would read.
    cache_mode = models.CharField(max_length=4, choices=CacheMode.choices, default=CacheMode.AUTO)
    cache_ttl_seconds = models.PositiveIntegerField(default=3600)
    cache_max_distance = models.FloatField(default=0.05)  # cosine distance; 0 = exact only
    cache_personalised = models.BooleanField(default=False)  # entries per end user
    cache_fallback_max_distance = models.FloatField(null=True, blank=True, default=0.15)
    cache_generation = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    def caches(self, params: dict, tools: list | None = None) -> bool:
        """Whether runs with these model parameters use the answer cache."""
        if self.cache_mode == self.CacheMode.OFF:
            return False
        if self.cache_mode == self.CacheMode.ON:
            return True
        # Auto: an unset temperature is the provider's default (non-zero), so not deterministic.
        temperature = (params or {}).get("temperature")
        return temperature is not None and float(temperature) == 0 and not tools


class PromptVersion(models.Model):
    """One version of a feature's prompt. Drafts may change; published versions never do."""

    class Source(models.TextChoices):
        DEFAULT = "default", "Shipped default"
        TENANT = "tenant", "Tenant's own"

    feature = models.ForeignKey(Feature, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    label = models.CharField(max_length=40)  # "v3" or "default@1.2.0"
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.TENANT)
    system = models.TextField()
    context_template = models.TextField(blank=True)
    user_template = models.TextField()
    variables = models.JSONField(default=list)  # declared input variable names
    few_shot = models.JSONField(default=list)  # [{"input": {...}, "output": "..."}]
    negative_examples = models.JSONField(default=list)  # [{"input": {...}, "why": "..."}]
    params = models.JSONField(default=dict)  # temperature, max_tokens, top_p
    contract = models.JSONField(default=dict)  # {"kind", "schema"?, "labels"?}
    author_id = models.BigIntegerField(null=True)
    author_name = models.CharField(max_length=150, blank=True)
    changelog = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["feature", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["feature", "number"], name="one_number_per_feature"),
            models.UniqueConstraint(fields=["feature", "label"], name="one_label_per_feature"),
        ]

    def __str__(self) -> str:
        return f"{self.feature.slug} {self.label}"

    @property
    def is_published(self) -> bool:
        return self.published_at is not None


class FeatureDeployment(models.Model):
    """What serves a feature now: one active version, or an A/B split between versions."""

    feature = models.OneToOneField(Feature, on_delete=models.CASCADE, related_name="deployment")
    active_version = models.ForeignKey(
        PromptVersion, on_delete=models.PROTECT, null=True, related_name="+"
    )
    # [{"version_id": 3, "weight": 80, "variant": "A"}, …]; empty means only active_version
    split = models.JSONField(default=list)
    updated_at = models.DateTimeField(auto_now=True)


class ChangeLogEntry(models.Model):
    class Action(models.TextChoices):
        PUBLISH = "publish", "Publish"
        ROLLBACK = "rollback", "Rollback"
        SPLIT = "split", "Traffic split"
        DEFAULT = "default", "Shipped default loaded"
        CACHE = "cache", "Cache policy"
        RUN_MODE = "run_mode", "Run mode"

    feature = models.ForeignKey(Feature, on_delete=models.CASCADE, related_name="changes")
    action = models.CharField(max_length=10, choices=Action.choices)
    before = models.JSONField(default=dict)
    after = models.JSONField(default=dict)
    actor_id = models.BigIntegerField(null=True)
    actor_name = models.CharField(max_length=150, blank=True)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]


class EvalCase(models.Model):
    """One input with an expectation, for evaluating a candidate version before publishing."""

    class Check(models.TextChoices):
        LABEL = "label", "Exact label"
        FIELDS = "fields", "JSON fields equal"
        CONTAINS = "contains", "Output contains"
        VALID = "valid", "Valid against the contract"

    class Source(models.TextChoices):
        DEFAULT = "default", "Shipped default"
        TENANT = "tenant", "Tenant's own"

    feature = models.ForeignKey(Feature, on_delete=models.CASCADE, related_name="eval_cases")
    name = models.CharField(max_length=200)
    input = models.JSONField(default=dict)
    check_kind = models.CharField(max_length=10, choices=Check.choices)
    expected = models.JSONField(null=True, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.TENANT)
    # A removed shipped case is only disabled, so the next load of the defaults does not bring
    # it back.
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["feature", "name"], name="one_eval_case_name")
        ]

    def __str__(self) -> str:
        return f"{self.feature.slug}: {self.name}"


class EvalRun(models.Model):
    """A candidate version and the serving one run on the feature's dataset, side by side."""

    feature = models.ForeignKey(Feature, on_delete=models.CASCADE, related_name="eval_runs")
    candidate = models.ForeignKey(PromptVersion, on_delete=models.CASCADE, related_name="+")
    baseline = models.ForeignKey(
        PromptVersion, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    total = models.PositiveIntegerField()
    candidate_passed = models.PositiveIntegerField()
    baseline_passed = models.PositiveIntegerField(null=True)
    regression = models.BooleanField()
    # [{"case": name, "check": kind, "candidate": {...}, "baseline": {...} | None}]
    results = models.JSONField(default=list)
    actor_id = models.BigIntegerField(null=True)
    actor_name = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    @property
    def candidate_rate(self) -> float:
        return self.candidate_passed / self.total if self.total else 0.0

    @property
    def baseline_rate(self) -> float | None:
        if self.baseline_passed is None or not self.total:
            return None
        return self.baseline_passed / self.total
