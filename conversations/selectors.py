"""Reads on conversations. Every lookup names the end user: another user's conversation is
indistinguishable from one that does not exist."""

from __future__ import annotations

from django.db.models import QuerySet

from conversations.models import Conversation, Turn
from gateway.errors import NotFound


def conversations_of(*, end_user: str) -> QuerySet[Conversation]:
    return Conversation.objects.filter(end_user=end_user)


def conversation_for(*, conversation_id: str, end_user: str) -> Conversation:
    """The conversation, if it is ``end_user``'s; otherwise a 404."""
    conversation = (
        Conversation.objects.filter(pk=conversation_id, end_user=end_user).first()
        if end_user
        else None
    )
    if conversation is None:
        raise NotFound(
            f"No conversation {conversation_id!r} for this user.",
            param="conversation_id",
            code="conversation_not_found",
        )
    return conversation


def turns_of(conversation: Conversation) -> QuerySet[Turn]:
    return conversation.turns.order_by("ordinal")
