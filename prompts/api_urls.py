from django.urls import path

from prompts.api import FeatureRunView

urlpatterns = [
    path("features/<slug:slug>/runs", FeatureRunView.as_view(), name="feature-runs"),
]
