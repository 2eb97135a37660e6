from django.urls import path

from jobs.api import JobCancelView, JobEventsView, JobView

urlpatterns = [
    path("jobs/<str:job_id>", JobView.as_view(), name="job"),
    path("jobs/<str:job_id>/events", JobEventsView.as_view(), name="job-events"),
    path("jobs/<str:job_id>/cancel", JobCancelView.as_view(), name="job-cancel"),
]
