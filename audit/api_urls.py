from django.urls import path

from audit.api import RunFeedbackView

urlpatterns = [
    path("runs/<str:run_id>/feedback", RunFeedbackView.as_view(), name="run-feedback"),
]
