"""Input and output of ``GET /api/v1/usage``.

``from`` and ``to`` are Python keywords, so those fields are declared as ``date_from`` and
``date_to`` and renamed in ``get_fields`` (which drf-spectacular reads too).
"""

from decimal import Decimal

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from usage.models import Limit
from usage.selectors import GROUPS

MAX_RANGE_DAYS = 400


class _KeywordNamedFields:
    renamed = {"date_from": "from", "date_to": "to"}

    def get_fields(self):
        fields = super().get_fields()
        for declared, public in self.renamed.items():
            if declared in fields:
                fields[public] = fields.pop(declared)
        return fields


@extend_schema_field({"type": "string", "format": "decimal", "example": "0.0125"})
class PlainDecimalField(serializers.Field):
    """An exact decimal as a string without exponent or trailing zeros: ``"0.0125"``."""

    def to_representation(self, value) -> str:
        return format(Decimal(value).normalize(), "f")


class UsageQuerySerializer(_KeywordNamedFields, serializers.Serializer):
    date_from = serializers.DateField(
        required=False, help_text="First day, YYYY-MM-DD (UTC). Default: the 1st of this month."
    )
    date_to = serializers.DateField(
        required=False, help_text="Last day, included, YYYY-MM-DD (UTC). Default: today."
    )
    group_by = serializers.ChoiceField(
        choices=list(GROUPS),
        required=False,
        default="none",
        help_text="Rows per feature, model (the alias called), end user or day; none: totals only.",
    )

    def validate(self, attrs):
        today = timezone.now().date()
        attrs.setdefault("from", today.replace(day=1))
        attrs.setdefault("to", today)
        if attrs["from"] > attrs["to"]:
            raise serializers.ValidationError({"from": "must not be after 'to'."})
        if (attrs["to"] - attrs["from"]).days >= MAX_RANGE_DAYS:
            raise serializers.ValidationError(
                {"from": f"a range is at most {MAX_RANGE_DAYS} days."}
            )
        return attrs


class UsageRowSerializer(serializers.Serializer):
    requests = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cost = PlainDecimalField(help_text="USD, exact decimal as a string")
    errors = serializers.IntegerField(help_text="failed, interrupted or lost calls")
    refused = serializers.IntegerField(help_text="calls refused before the model (limits, guards)")
    cache_hits = serializers.IntegerField()
    degraded = serializers.IntegerField()
    fallbacks = serializers.IntegerField()


class UsageGroupSerializer(UsageRowSerializer):
    key = serializers.CharField(
        help_text="the feature slug, alias, end-user id or day (YYYY-MM-DD) of this row"
    )


class LimitUseSerializer(serializers.Serializer):
    scope = serializers.ChoiceField(choices=Limit.Scope.values)
    scope_value = serializers.CharField(
        help_text="key id, feature slug or end-user id; * for each end user; empty for tenant"
    )
    metric = serializers.ChoiceField(choices=Limit.Metric.values)
    hard = PlainDecimalField(help_text="the hard limit (tokens, USD or requests)")
    soft_percent = serializers.IntegerField()
    used = PlainDecimalField(help_text="current use, in-flight reservations included")
    percent = serializers.FloatField()
    state = serializers.ChoiceField(choices=["ok", "soft", "hard"])
    resets_at = serializers.DateTimeField(source="resets")
    source = serializers.ChoiceField(
        choices=["plan", "limit", "key"], help_text="the plan, a tenant limit or the API key"
    )


class UsageResponseSerializer(_KeywordNamedFields, serializers.Serializer):
    date_from = serializers.DateField()
    date_to = serializers.DateField()
    group_by = serializers.ChoiceField(choices=list(GROUPS))
    totals = UsageRowSerializer()
    groups = UsageGroupSerializer(many=True)
    limits = LimitUseSerializer(many=True)
