from django.urls import path

from retrieval import views

app_name = "retrieval"
base = "t/<slug:slug>/documents/"

urlpatterns = [
    path(base, views.document_list, name="document_list"),
    path(base + "add/", views.document_add, name="document_add"),
    path(base + "search/", views.search_playground, name="search"),
    path(base + "<int:document_id>/", views.document_detail, name="document_detail"),
    path(base + "<int:document_id>/reingest/", views.document_reingest, name="document_reingest"),
    path(base + "<int:document_id>/delete/", views.document_delete, name="document_delete"),
]
