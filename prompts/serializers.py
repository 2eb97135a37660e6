from rest_framework import serializers


class CacheOptionsSerializer(serializers.Serializer):
    max_distance = serializers.FloatField(
        required=False,
        min_value=0,
        max_value=2,
        help_text="Serve a cached answer only this close (cosine distance). Stricter than the "
        "feature's threshold tightens it; looser is clamped to the feature's.",
    )
    bypass = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Skip the cache for this run (the fresh answer is still stored).",
    )


class RunRequestSerializer(serializers.Serializer):
    input = serializers.JSONField(help_text='The feature\'s variables, e.g. {"question": "…"}')
    user = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=256,
        help_text="Your end user's id (A/B arms stick to it; limits "
        "and usage are attributed to it).",
    )
    mode = serializers.ChoiceField(
        choices=["sync", "stream", "async"],
        required=False,
        help_text="sync (the default), stream, or async; an async-only feature runs async "
        "when mode is left out, and refuses sync and stream.",
    )
    access_tags = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, max_length=50
    )
    webhook_url = serializers.URLField(required=False)
    cache = CacheOptionsSerializer(required=False)
    conversation_id = serializers.CharField(
        required=False,
        max_length=64,
        help_text="Continue this conversation of the end user's (send `user`): its summary and "
        "recent turns go into the prompt, and the input and answer are appended to it.",
    )

    def validate_input(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("must be an object of the feature's variables")
        return value


class RunUsageSerializer(serializers.Serializer):
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cost = serializers.CharField()


class RunSerializer(serializers.Serializer):
    id = serializers.CharField()
    feature = serializers.CharField()
    output = serializers.JSONField()
    prompt_version = serializers.CharField()
    variant = serializers.CharField()
    model = serializers.CharField()
    deployment = serializers.CharField()
    usage = RunUsageSerializer()
    citations = serializers.ListField(child=serializers.CharField())
    cached = serializers.BooleanField()
    degraded = serializers.BooleanField()
    flags = serializers.ListField(child=serializers.CharField())
