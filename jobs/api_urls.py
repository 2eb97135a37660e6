from django.urls import path

from jobs.api import JobCancelView, JobEventsView, JobView

urlpatterns = [
    path("jobs/<str:job_id>", JobView.as_view(), name="job"),
    path("jobs/<str:job_id>/events", JobEventsView.as_view(), name="job-events"),
    path("jobs/<str:job_id>/cancel", JobCancelView.as_view(), name="job-cancel"),
]

from jobs import webhook_api  # noqa: E402

urlpatterns += [
    path("webhooks", webhook_api.EndpointListView.as_view(), name="webhooks"),
    path("webhooks/<int:endpoint_id>", webhook_api.EndpointDetailView.as_view(), name="webhook"),
    path(
        "webhooks/<int:endpoint_id>/rotate",
        webhook_api.EndpointRotateView.as_view(),
        name="webhook-rotate",
    ),
    path(
        "webhooks/<int:endpoint_id>/deliveries",
        webhook_api.DeliveryListView.as_view(),
        name="webhook-deliveries",
    ),
    path(
        "webhooks/deliveries/<int:delivery_id>/redeliver",
        webhook_api.RedeliverView.as_view(),
        name="webhook-redeliver",
    ),
]
