from django.urls import path

from audit import views

app_name = "audit"
base = "t/<slug:slug>/audit/"

urlpatterns = [
    path(base, views.record_list, name="record_list"),
    path(base + "chain/", views.chain_status, name="chain_status"),
    path(base + "export.<str:fmt>", views.export, name="export"),
    path(base + "<int:record_id>/", views.record_detail, name="record_detail"),
    path(base + "<int:record_id>/review/", views.review, name="review"),
]
