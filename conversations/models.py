"""Conversations (tenant schema): one end user's turns, and a running summary of the older ones.

A conversation belongs to the end user it was created for; every read or write names that user,
and any other user gets a 404 as if it did not exist. Turns are kept verbatim until a summariser
run folds them into ``summary``; ``summarised_through`` is the ordinal of the last folded turn, so
the prompt gets the summary plus every later turn.
"""

import uuid

from django.db import models


def new_conversation_id() -> str:
    return f"conv_{uuid.uuid4().hex}"


class Conversation(models.Model):
    id = models.CharField(primary_key=True, max_length=64, default=new_conversation_id)
    end_user = models.CharField(max_length=256, db_index=True)
    title = models.CharField(max_length=200, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # The running summary of turns 1..summarised_through (empty until the first compression).
    summary = models.TextField(blank=True)
    summary_tokens = models.PositiveIntegerField(default=0)
    summarised_through = models.PositiveIntegerField(default=0)
    summaries_made = models.PositiveIntegerField(default=0)
    # Bumped whenever a turn is appended, so a summariser that read an older state can tell.
    turn_count = models.PositiveIntegerField(default=0)
    # Tokens of the turns after ``summarised_through``: the part that is sent verbatim.
    open_tokens = models.PositiveIntegerField(default=0)
    summary_requested_at = models.DateTimeField(null=True, blank=True)
    summary_error = models.CharField(max_length=300, blank=True)
    created_by_key_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-created_at"]
        indexes = [models.Index(fields=["end_user", "-updated_at"], name="conv_user_recent")]

    def __str__(self) -> str:
        return self.id


class Turn(models.Model):
    class Role(models.TextChoices):
        USER = "user", "User"
        ASSISTANT = "assistant", "Assistant"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="turns")
    ordinal = models.PositiveIntegerField()
    role = models.CharField(max_length=10, choices=Role.choices)
    content = models.TextField()
    token_count = models.PositiveIntegerField()
    run_id = models.CharField(max_length=64, blank=True)  # the feature run that produced it
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["conversation", "ordinal"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "ordinal"], name="conv_turn_ordinal")
        ]

    def __str__(self) -> str:
        return f"{self.conversation_id}#{self.ordinal}"
