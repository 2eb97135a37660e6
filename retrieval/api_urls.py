from django.urls import path

from retrieval import api

urlpatterns = [
    path("documents", api.DocumentListView.as_view(), name="documents"),
    path("documents/<int:document_id>", api.DocumentDetailView.as_view(), name="document"),
    path(
        "documents/<int:document_id>/reingest",
        api.DocumentReingestView.as_view(),
        name="document-reingest",
    ),
    path("search", api.SearchView.as_view(), name="search"),
]
