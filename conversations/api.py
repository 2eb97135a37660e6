"""Conversations API (scope "inference"): ``/api/v1/conversations``,
``/api/v1/conversations/<id>``, ``/api/v1/conversations/<id>/messages``.

Every call names the end user (``user`` in the body, or ``?user=`` on reads and deletes); a
conversation of another user, like one of another tenant, is a 404."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from config.params import int_query_param
from conversations import selectors, services
from conversations.serializers import (
    AppendSerializer,
    ConversationCreateSerializer,
    ConversationDetailSerializer,
    ConversationSerializer,
    TurnSerializer,
)
from gateway.errors import InvalidRequest

MAX_PAGE = 100
_USER = OpenApiParameter("user", str, required=True, description="The end user's id")
_ERRORS = {
    400: OpenApiResponse(description="invalid_request"),
    404: OpenApiResponse(description="conversation_not_found (also another user's)"),
}


def _user_param(request) -> str:
    user = (request.query_params.get("user") or "").strip()
    if not user:
        raise InvalidRequest("Send the end user as ?user=.", param="user")
    return user


def _detail(conversation):
    conversation.ordered_turns = selectors.turns_of(conversation)
    return ConversationDetailSerializer(conversation).data


class ConversationListView(APIView):
    required_scope = "inference"

    @extend_schema(
        summary="Start a conversation",
        request=ConversationCreateSerializer,
        responses={201: ConversationSerializer, 400: _ERRORS[400]},
    )
    def post(self, request):
        body = ConversationCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        conversation = services.create_conversation(
            end_user=body.validated_data["user"],
            title=body.validated_data["title"],
            metadata=body.validated_data["metadata"],
            key_id=request.auth.id,
        )
        return Response(ConversationSerializer(conversation).data, status=201)

    @extend_schema(
        summary="An end user's conversations, most recent first",
        parameters=[_USER, OpenApiParameter("limit", int), OpenApiParameter("offset", int)],
        responses={200: ConversationSerializer(many=True), 400: _ERRORS[400]},
    )
    def get(self, request):
        queryset = selectors.conversations_of(end_user=_user_param(request))
        limit = int_query_param(request, "limit", 20, 1, MAX_PAGE)
        offset = int_query_param(request, "offset", 0, 0, 10**9)
        return Response(
            {
                "data": ConversationSerializer(queryset[offset : offset + limit], many=True).data,
                "total": queryset.count(),
                "limit": limit,
                "offset": offset,
            }
        )


class ConversationDetailView(APIView):
    required_scope = "inference"

    @extend_schema(
        summary="A conversation with its summary and turns",
        parameters=[_USER],
        responses={200: ConversationDetailSerializer, **_ERRORS},
    )
    def get(self, request, conversation_id: str):
        conversation = selectors.conversation_for(
            conversation_id=conversation_id, end_user=_user_param(request)
        )
        return Response(_detail(conversation))

    @extend_schema(
        summary="Delete a conversation, its turns, summary and cached answers",
        parameters=[_USER],
        responses={204: None, **_ERRORS},
    )
    def delete(self, request, conversation_id: str):
        conversation = selectors.conversation_for(
            conversation_id=conversation_id, end_user=_user_param(request)
        )
        services.delete_conversation(conversation=conversation)
        return Response(status=204)


class ConversationMessagesView(APIView):
    required_scope = "inference"

    @extend_schema(
        summary="Append messages to a conversation",
        request=AppendSerializer,
        responses={201: TurnSerializer(many=True), **_ERRORS},
    )
    def post(self, request, conversation_id: str):
        body = AppendSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        conversation = selectors.conversation_for(
            conversation_id=conversation_id, end_user=body.validated_data["user"]
        )
        turns = services.append_turns(
            conversation=conversation,
            turns=[
                services.NewTurn(role=m["role"], content=m["content"])
                for m in body.validated_data["messages"]
            ],
        )
        return Response(
            {
                "data": TurnSerializer(turns, many=True).data,
                "conversation": ConversationSerializer(conversation).data,
            },
            status=201,
        )
