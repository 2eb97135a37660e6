from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from config import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
    path("v1/", include("gateway.urls")),
    path("api/v1/", include("usage.api_urls")),
    path("api/v1/", include("audit.api_urls")),
    path("api/v1/", include("prompts.api_urls")),
    path("api/v1/", include("jobs.api_urls")),
    path("api/v1/", include("retrieval.api_urls")),
    path("api/v1/", include("conversations.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("", include("tenants.urls")),
    path("", include("prompts.urls")),
    path("", include("audit.urls")),
    path("", include("usage.urls")),
    path("", include("jobs.urls")),
    path("", include("retrieval.urls")),
    path("", include("cache.urls")),
]

handler404 = "config.handlers.not_found"
handler500 = "config.handlers.server_error"
