from django.urls import path

from usage import views

app_name = "usage"
base = "t/<slug:slug>/usage/"

urlpatterns = [
    path(base, views.dashboard, name="dashboard"),
    path(base + "export.csv", views.export_csv, name="export"),
    path(base + "quotas/", views.quotas, name="quotas"),
    path(base + "quotas/<int:limit_id>/remove/", views.quota_remove, name="quota_remove"),
]
