from django.utils import timezone
from rest_framework import serializers

from usage.selectors import GROUPS


class UsageQuerySerializer(serializers.Serializer):
    date_from = serializers.DateField(required=False)
    date_to = serializers.DateField(required=False)
    group_by = serializers.ChoiceField(choices=sorted(GROUPS), required=False, default="none")

    def validate(self, attrs):
        today = timezone.now().date()
        attrs.setdefault("date_from", today.replace(day=1))
        attrs.setdefault("date_to", today)
        if attrs["date_from"] > attrs["date_to"]:
            raise serializers.ValidationError({"from": "must not be after 'to'"})
        if (attrs["date_to"] - attrs["date_from"]).days > 400:
            raise serializers.ValidationError({"from": "a range is at most 400 days"})
        return attrs


class UsageRowSerializer(serializers.Serializer):
    key = serializers.CharField(required=False)
    requests = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cost = serializers.CharField(help_text="USD, exact decimal")
    errors = serializers.IntegerField()
    refused = serializers.IntegerField()
    cache_hits = serializers.IntegerField()
    degraded = serializers.IntegerField()
    fallbacks = serializers.IntegerField()


class UsageResponseSerializer(serializers.Serializer):
    date_from = serializers.DateField(source="from")
    date_to = serializers.DateField(source="to")
    group_by = serializers.CharField()
    totals = UsageRowSerializer()
    groups = UsageRowSerializer(many=True)
    budgets = serializers.ListField(child=serializers.DictField())
