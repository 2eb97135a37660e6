"""``Idempotency-Key`` on POSTs that create runs and jobs.

The first request with a key is answered normally and its answer stored; the same key with the
same body within 24 hours gets that stored answer again (no second provider call, no second
charge); the same key with another body is a 409. A repeat that arrives while the first is still
running is a 409 too (``idempotency_in_progress``), so two concurrent retries cannot both call the
provider.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from functools import wraps

from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.response import Response

from gateway.errors import Conflict, InvalidRequest
from jobs.models import IdempotencyKey

WINDOW = timedelta(hours=24)


def _file_digest(upload: UploadedFile) -> str:
    """An uploaded file by its bytes, not its name: two files of one name are two requests."""
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    return f"file {upload.name or ''} {upload.size} sha256:{digest.hexdigest()}"


def _canonical(value):
    if isinstance(value, UploadedFile):
        return _file_digest(value)
    if hasattr(value, "lists"):  # a QueryDict (forms, multipart): every value of every field
        return {name: [_canonical(v) for v in values] for name, values in value.lists()}
    return value


def _body_hash(request) -> str:
    canonical = _canonical(request.data)
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, default=str).encode()).hexdigest()


def idempotent(view_method):
    """Decorate a DRF view's ``post``: answers are replayed for a repeated Idempotency-Key."""

    @wraps(view_method)
    def wrapper(self, request, *args, **kwargs):
        key = request.headers.get("Idempotency-Key", "").strip()
        if not key:
            return view_method(self, request, *args, **kwargs)
        if len(key) > 255:
            raise InvalidRequest(
                "Idempotency-Key is at most 255 characters.", param="Idempotency-Key"
            )
        path = request.path
        digest = _body_hash(request)
        IdempotencyKey.objects.filter(
            key=key, path=path, created_at__lt=timezone.now() - WINDOW
        ).delete()
        try:
            with transaction.atomic():
                entry = IdempotencyKey.objects.create(key=key, path=path, body_hash=digest)
        except IntegrityError:
            entry = IdempotencyKey.objects.get(key=key, path=path)
            if entry.body_hash != digest:
                raise Conflict(
                    "This Idempotency-Key was used with a different request body.",
                    param="Idempotency-Key",
                    code="idempotency_key_reused",
                ) from None
            if entry.status_code is None:
                raise Conflict(
                    "The first request with this Idempotency-Key is still running.",
                    param="Idempotency-Key",
                    code="idempotency_in_progress",
                ) from None
            response = Response(entry.response, status=entry.status_code)
            response["Idempotent-Replayed"] = "true"
            return response
        try:
            response = view_method(self, request, *args, **kwargs)
        except Exception:
            entry.delete()  # a failed first attempt may be retried with the same key
            raise
        if isinstance(response, Response) and response.status_code < 500:
            entry.status_code = response.status_code
            entry.response = response.data
            entry.save(update_fields=["status_code", "response"])
        else:
            entry.delete()  # streams and server errors are not replayed
        return response

    return wrapper
