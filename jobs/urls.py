from django.urls import path

from jobs import views

app_name = "jobs"
base = "t/<slug:slug>/webhooks/"

urlpatterns = [
    path(base, views.endpoints, name="webhooks"),
    path(base + "<int:endpoint_id>/", views.deliveries, name="deliveries"),
    path(base + "<int:endpoint_id>/rotate/", views.rotate, name="rotate"),
    path(base + "<int:endpoint_id>/remove/", views.remove, name="remove"),
    path(base + "<int:endpoint_id>/enable/", views.enable, name="enable"),
    path(base + "deliveries/<int:delivery_id>/redeliver/", views.redeliver, name="redeliver"),
    path("t/<slug:slug>/alerts/<int:alert_id>/ack/", views.alert_ack, name="alert_ack"),
]
