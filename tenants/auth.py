"""DRF glue: the tenant-resolution middleware has already authenticated the bearer key; these
classes expose it to DRF views (``request.auth`` is the ResolvedKey) and check scopes."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission

from gateway.errors import PermissionDenied, Unauthenticated


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        key = getattr(request._request, "api_key", None)
        if key is None:
            return None
        return (None, key)

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="switchboard"'


class HasApiKey(BasePermission):
    """Any valid key of the tenant; views that need a scope declare ``required_scope``."""

    def has_permission(self, request, view) -> bool:
        if request.auth is None:
            raise Unauthenticated("Send your API key as 'Authorization: Bearer <key>'.")
        scope = getattr(view, "required_scope", None)
        if scope and scope not in request.auth.scopes:
            raise PermissionDenied(f"This API key lacks the {scope!r} scope.", code="missing_scope")
        return True


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Documents the bearer API key in the OpenAPI schema."""

    target_class = "tenants.auth.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "A tenant API key (sk-sb-…)"}
