"""Operational endpoints: liveness and readiness."""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET


@require_GET
def healthz(request):
    """The process is up and serving (no dependency checked)."""
    return JsonResponse({"status": "ok"})


def _database_ok() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure means "not ready"; the type is reported
        return False, type(exc).__name__
    return True, "ok"


def _broker_ok() -> tuple[bool, str]:
    if settings.EMBEDDED_BROKER:
        folder = settings.EMBEDDED_BROKER_DIR / "in"
        import os

        ok = folder.is_dir() and os.access(folder, os.W_OK)
        return ok, "ok" if ok else "broker folder not writable"
    from kombu import Connection

    try:
        with Connection(settings.CELERY_BROKER_URL, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # any failure means "not ready"; the type is reported
        return False, type(exc).__name__
    return True, "ok"


@require_GET
def readyz(request):
    """Ready to serve: the database and the broker answer. 503 otherwise."""
    db_ok, db_detail = _database_ok()
    broker_ok, broker_detail = _broker_ok()
    ready = db_ok and broker_ok
    body = {
        "status": "ready" if ready else "unavailable",
        "checks": {"database": db_detail, "broker": broker_detail},
    }
    return JsonResponse(body, status=200 if ready else 503)


@require_GET
def metrics(request):
    """Prometheus text format. Protected by ``SWITCHBOARD_METRICS_TOKEN`` (bearer) when set,
    otherwise answered only to loopback addresses."""
    import hmac

    from django.http import HttpResponse

    from gateway.metrics import render_metrics

    token = settings.SWITCHBOARD_METRICS_TOKEN
    if token:
        supplied = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(supplied.encode(), token.encode()):
            return JsonResponse(
                {
                    "error": {
                        "type": "authentication_error",
                        "code": "bad_token",
                        "message": "Metrics need the bearer token.",
                        "param": None,
                    }
                },
                status=401,
            )
    elif request.META.get("REMOTE_ADDR") not in {"127.0.0.1", "::1"}:
        return JsonResponse(
            {
                "error": {
                    "type": "permission_error",
                    "code": "forbidden",
                    "message": "Metrics are served to loopback only unless "
                    "SWITCHBOARD_METRICS_TOKEN is set.",
                    "param": None,
                }
            },
            status=403,
        )
    body, content_type = render_metrics()
    return HttpResponse(body, content_type=content_type)
