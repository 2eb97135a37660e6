from rest_framework import serializers


class RatingField(serializers.Field):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | str):
            raise serializers.ValidationError("Use 'up', 'down' or a number from 1 to 5.")
        if isinstance(data, int) and not 1 <= data <= 5:
            raise serializers.ValidationError("A numeric rating is from 1 to 5.")
        if isinstance(data, str) and data.lower() not in {"up", "down", "1", "2", "3", "4", "5"}:
            raise serializers.ValidationError("Use 'up', 'down' or a number from 1 to 5.")
        return data

    def to_representation(self, value):
        return value


class FeedbackSerializer(serializers.Serializer):
    rating = RatingField(required=False)
    edited_output = serializers.JSONField(required=False)
    edited_by = serializers.CharField(required=False, max_length=256, allow_blank=False)
    editor_name = serializers.CharField(required=False, max_length=256, allow_blank=True)
    comment = serializers.CharField(required=False, max_length=10_000, allow_blank=True)

    def validate(self, attrs):
        if not any(k in attrs for k in ("rating", "edited_output", "comment")):
            raise serializers.ValidationError("Send a rating, an edited_output or a comment.")
        if "edited_output" in attrs and not attrs.get("edited_by"):
            raise serializers.ValidationError({"edited_by": "Required with edited_output."})
        return attrs


class AmendmentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    run_id = serializers.CharField(source="record.call_id")
    rating = serializers.CharField()
    edited_output = serializers.JSONField()
    edited_by = serializers.CharField(source="editor_id")
    comment = serializers.CharField()
    created_at = serializers.DateTimeField()
