from django.urls import path

from conversations import api

urlpatterns = [
    path("conversations", api.ConversationListView.as_view(), name="conversations"),
    path(
        "conversations/<str:conversation_id>",
        api.ConversationDetailView.as_view(),
        name="conversation",
    ),
    path(
        "conversations/<str:conversation_id>/messages",
        api.ConversationMessagesView.as_view(),
        name="conversation-messages",
    ),
]
