from rest_framework import serializers

from conversations.models import Conversation, Turn
from conversations.services import MAX_TURN_CHARS, MAX_TURNS_PER_APPEND

USER_HELP = "Your end user's id; only this user can read or extend the conversation."


class ConversationCreateSerializer(serializers.Serializer):
    user = serializers.CharField(max_length=256, help_text=USER_HELP)
    title = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    metadata = serializers.DictField(required=False, default=dict)


class TurnInputSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Turn.Role.values)
    content = serializers.CharField(max_length=MAX_TURN_CHARS, trim_whitespace=False)


class AppendSerializer(serializers.Serializer):
    user = serializers.CharField(max_length=256, help_text=USER_HELP)
    messages = TurnInputSerializer(many=True, allow_empty=False, max_length=MAX_TURNS_PER_APPEND)


class TurnSerializer(serializers.ModelSerializer):
    class Meta:
        model = Turn
        fields = ["ordinal", "role", "content", "token_count", "run_id", "created_at"]


class ConversationSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="end_user")

    class Meta:
        model = Conversation
        fields = [
            "id",
            "user",
            "title",
            "metadata",
            "turn_count",
            "summary",
            "summarised_through",
            "open_tokens",
            "created_at",
            "updated_at",
        ]


class ConversationDetailSerializer(ConversationSerializer):
    turns = TurnSerializer(many=True, source="ordered_turns")

    class Meta(ConversationSerializer.Meta):
        fields = [*ConversationSerializer.Meta.fields, "turns"]
