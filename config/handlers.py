"""Error pages: JSON for API paths (the contract's error shape), HTML for the console."""

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
