"""Tenant resolution: the one place where a request switches the database to a tenant's schema.

- API paths (``/v1/``, ``/api/v1/``): the bearer key names the tenant. Unknown, revoked or
  expired keys get 401; a suspended tenant, or a key used on another tenant's hostname, gets 403.
- Console paths (``/t/<slug>/``): the logged-in staff user's membership names the tenant; a
  tenant the user is not a member of is a 404, exactly like one that does not exist.
- Everything else runs in the public schema.
"""

from __future__ import annotations

import hashlib

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse

from config.logging import tenant_var
from tenants import selectors

API_PREFIXES = ("/v1/", "/api/v1/")
CONSOLE_PREFIX = "/t/"


def _error(status: int, type_: str, code: str, message: str) -> JsonResponse:
    response = JsonResponse(
        {"error": {"type": type_, "code": code, "message": message, "param": None}},
        status=status,
    )
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="switchboard"'
    return response


def _bearer_token(request: HttpRequest) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def resolve_api_request(request: HttpRequest) -> HttpResponse | None:
    """Authenticate the bearer key and switch to its tenant; an error response on refusal."""
    token = _bearer_token(request)
    if token is None:
        return _error(
            401,
            "authentication_error",
            "missing_api_key",
            "Send your API key as 'Authorization: Bearer <key>'.",
        )
    key = selectors.resolve_api_key(hashlib.sha256(token.encode()).hexdigest())
    if key is None:
        return _error(401, "authentication_error", "invalid_api_key", "Unknown API key.")
    if not key.is_usable():
        return _error(
            401,
            "authentication_error",
            "invalid_api_key",
            "This API key has been revoked or has expired.",
        )
    if not key.tenant.is_active:
        return _error(403, "permission_error", "tenant_suspended", "This tenant is suspended.")
    host_tenant = selectors.tenant_id_for_host(request.get_host().rsplit(":", 1)[0].lower())
    if host_tenant is not None and host_tenant != key.tenant.id:
        return _error(
            403,
            "permission_error",
            "wrong_tenant",
            "This API key belongs to another tenant than this hostname.",
        )
    request.tenant = key.tenant
    request.api_key = key
    connection.set_tenant(key.tenant)
    tenant_var.set(key.tenant.slug)
    selectors.note_key_used(key.id)
    return None


def resolve_console_request(request: HttpRequest) -> HttpResponse | None:
    slug = request.path[len(CONSOLE_PREFIX) :].split("/", 1)[0]
    user = request.user
    if not user.is_authenticated:
        return None  # the view's login_required redirects to the login page
    tenant = selectors.tenant_by_slug(slug)
    role = selectors.role_in_tenant(user, tenant) if tenant else None
    if tenant is None or role is None:
        raise Http404("No such tenant.")
    request.tenant = tenant
    request.role = role
    connection.set_tenant(tenant)
    tenant_var.set(tenant.slug)
    return None


def _resolve(request: HttpRequest) -> HttpResponse | None:
    request.tenant = None
    request.api_key = None
    request.role = None
    path = request.path
    if path.startswith(API_PREFIXES):
        return resolve_api_request(request)
    if path.startswith(CONSOLE_PREFIX):
        return resolve_console_request(request)
    connection.set_schema_to_public()
    return None


class TenantResolutionMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        try:
            refusal = _resolve(request)
            if refusal is not None:
                return refusal
            return self.get_response(request)
        finally:
            connection.set_schema_to_public()
            tenant_var.set("-")

    async def __acall__(self, request):
        # The resolution runs in the request's sync thread, which owns its database connection;
        # the async view's database calls run on that same thread (thread-sensitive).
        try:
            refusal = await sync_to_async(_resolve)(request)
            if refusal is not None:
                return refusal
            return await self.get_response(request)
        finally:
            await sync_to_async(connection.set_schema_to_public)()
            tenant_var.set("-")
