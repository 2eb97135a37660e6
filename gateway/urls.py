from django.urls import path

from gateway import views

urlpatterns = [
    path("chat/completions", views.chat_completions, name="chat-completions"),
    path("embeddings", views.embeddings, name="embeddings"),
    path("models", views.models, name="models"),
]
