"""Error pages: JSON for API paths (the contract's error shape), HTML for the console."""

from django.core.handlers.asgi import ASGIHandler
from django.http import JsonResponse
from django.shortcuts import render

from tenants.middleware import API_PREFIXES


def _is_api(request) -> bool:
    return request.path.startswith(API_PREFIXES)


def not_found(request, exception=None):
    if _is_api(request):
        return JsonResponse(
            {
                "error": {
                    "type": "not_found",
                    "code": "not_found",
                    "message": "Not found.",
                    "param": None,
                }
            },
            status=404,
        )
    return render(request, "404.html", status=404)


def server_error(request):
    if _is_api(request):
        return JsonResponse(
            {
                "error": {
                    "type": "server_error",
                    "code": "internal_error",
                    "message": "Internal error; it has been logged.",
                    "param": None,
                }
            },
            status=500,
        )
    return render(request, "500.html", status=500)


class GatewayASGIHandler(ASGIHandler):
    """Django's ASGI handler with the gateway's own, short middleware chain."""

    middleware = [
        "config.middleware.RequestIdMiddleware",
        "tenants.middleware.TenantResolutionMiddleware",
    ]

    def load_middleware(self, is_async=False):
        from django.test.utils import override_settings

        with override_settings(MIDDLEWARE=self.middleware):
            super().load_middleware(is_async=is_async)
