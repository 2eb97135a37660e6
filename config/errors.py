"""One place that turns exceptions into the JSON error shape of the API contract:
``{"error": {"type", "code", "message", "param"}}`` with the right HTTP status."""

from __future__ import annotations

import logging

from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

from gateway.errors import SwitchboardError

logger = logging.getLogger(__name__)


def error_body(*, type: str, code: str, message: str, param: str | None = None) -> dict:
    return {"error": {"type": type, "code": code, "message": message, "param": param}}


def error_json_response(exc: SwitchboardError) -> JsonResponse:
    """The plain-Django (non-DRF) rendering, used by the async gateway views and middleware."""
    response = JsonResponse(
        error_body(type=exc.type, code=exc.code, message=exc.message, param=exc.param),
        status=exc.status,
    )
    for header, value in _headers_of(exc).items():
        response[header] = value
    return response


def _headers_of(exc: SwitchboardError) -> dict[str, str]:
    headers = dict(getattr(exc, "headers", None) or {})
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        headers.setdefault("Retry-After", str(max(1, round(retry_after))))
    return headers


def _first_field_error(detail) -> tuple[str | None, str]:
    """DRF validation details → (param, message) naming the first offending field."""
    if isinstance(detail, dict):
        for field, errors in detail.items():
            param, message = _first_field_error(errors)
            name = field if field != "non_field_errors" else None
            if param and name:
                name = f"{name}.{param}"
            return (name or param), message
    if isinstance(detail, list) and detail:
        return _first_field_error(detail[0])
    return None, str(detail)


def api_exception_handler(exc, context) -> Response | None:
    """DRF exception handler: every API error leaves in the contract's JSON shape."""
    if isinstance(exc, SwitchboardError):
        body = error_body(type=exc.type, code=exc.code, message=exc.message, param=exc.param)
        return Response(body, status=exc.status, headers=_headers_of(exc))
    if isinstance(exc, Http404):
        return Response(
            error_body(type="not_found", code="not_found", message="Not found."), status=404
        )
    if isinstance(exc, drf_exceptions.ValidationError):
        param, message = _first_field_error(exc.detail)
        if param:
            message = f"{param}: {message}"
        return Response(
            error_body(
                type="invalid_request_error", code="invalid_request", message=message, param=param
            ),
            status=400,
        )
    if isinstance(exc, drf_exceptions.ParseError):
        return Response(
            error_body(type="invalid_request_error", code="invalid_json", message=str(exc.detail)),
            status=400,
        )
    if isinstance(exc, drf_exceptions.NotAuthenticated | drf_exceptions.AuthenticationFailed):
        return Response(
            error_body(
                type="authentication_error", code="invalid_api_key", message=str(exc.detail)
            ),
            status=401,
        )
    if isinstance(exc, drf_exceptions.PermissionDenied):
        return Response(
            error_body(type="permission_error", code="forbidden", message=str(exc.detail)),
            status=403,
        )
    if isinstance(exc, drf_exceptions.Throttled):
        return Response(
            error_body(type="rate_limit_error", code="rate_limited", message=str(exc.detail)),
            status=429,
            headers={"Retry-After": str(int(exc.wait or 1))},
        )
    if isinstance(exc, drf_exceptions.APIException):
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else "error"
        return Response(
            error_body(type="invalid_request_error", code=code, message=str(exc.detail)),
            status=exc.status_code,
        )
    return None  # a genuine bug: let Django log it and answer 500
