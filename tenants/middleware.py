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
GATEWAY_PREFIX = "/v1/"
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


def _digest(request: HttpRequest) -> str | None:
    token = _bearer_token(request)
    return hashlib.sha256(token.encode()).hexdigest() if token else None


def _missing_key() -> JsonResponse:
    return _error(
        401,
        "authentication_error",
        "missing_api_key",
        "Send your API key as 'Authorization: Bearer <key>'.",
    )


def _check_key(request: HttpRequest, key, host_tenant: int | None) -> HttpResponse | None:
    """Every refusal of a known (or unknown) key; sets request.tenant/api_key when accepted."""
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
    if host_tenant is not None and host_tenant != key.tenant.id:
        return _error(
            403,
            "permission_error",
            "wrong_tenant",
            "This API key belongs to another tenant than this hostname.",
        )
    request.tenant = key.tenant
    request.api_key = key
    tenant_var.set(key.tenant.slug)
    return None


def _hostname(request: HttpRequest) -> str:
    return request.get_host().rsplit(":", 1)[0].lower()


def resolve_api_request(request: HttpRequest) -> HttpResponse | None:
    """Authenticate the bearer key and switch to its tenant; an error response on refusal."""
    digest = _digest(request)
    if digest is None:
        return _missing_key()
    key = selectors.resolve_api_key(digest)
    refusal = _check_key(request, key, selectors.tenant_id_for_host(_hostname(request)))
    if refusal is not None:
        return refusal
    connection.set_tenant(key.tenant)
    selectors.note_key_used(key.id)
    return None


def resolve_gateway_request_cached(request: HttpRequest):
    """The OpenAI-compatible paths' resolution from the in-process caches alone, on the event
    loop. Their views are async and name the tenant's schema explicitly for every query, so the
    connection is not switched here. Returns False when a cache misses (resolve in a thread)."""
    digest = _digest(request)
    if digest is None:
        return _missing_key()
    key = selectors.cached_api_key(digest)
    host = selectors.cached_tenant_for_host(_hostname(request))
    if key is False or host is False or not selectors.key_use_noted(key):
        return False
    return _check_key(request, key, host)


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
        if request.path.startswith(GATEWAY_PREFIX):
            request.tenant = request.api_key = request.role = None
            refusal = resolve_gateway_request_cached(request)
            if refusal is False:  # a cache missed: look it up (and cache it) in a thread
                refusal = await sync_to_async(resolve_api_request)(request)
                await sync_to_async(connection.set_schema_to_public)()
            try:
                if refusal is not None:
                    return refusal
                return await self.get_response(request)
            finally:
                tenant_var.set("-")
        # Everything else: resolved in the request's sync thread, which owns its database
        # connection; sync views then run on that same thread (thread-sensitive).
        try:
            refusal = await sync_to_async(_resolve)(request)
            if refusal is not None:
                return refusal
            return await self.get_response(request)
        finally:
            await sync_to_async(connection.set_schema_to_public)()
            tenant_var.set("-")
