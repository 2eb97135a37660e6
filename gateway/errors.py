"""The one exception hierarchy.

``SwitchboardError`` and its subclasses are what the API answers (rendered by
``config.errors``); ``ProviderError`` and its subclasses are what a provider attempt can fail with
(the ladder decides whether to retry, skip or give up). Messages never carry secrets or raw PII.
"""

from __future__ import annotations

from typing import Any


class SwitchboardError(Exception):
    """An error the API answers with ``{"error": {type, code, message, param}}`` and ``status``."""

    status = 400
    type = "invalid_request_error"
    code = "invalid_request"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.retry_after = retry_after
        self.headers = dict(headers or {})


class InvalidRequest(SwitchboardError):
    pass


class Unauthenticated(SwitchboardError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(SwitchboardError):
    status = 403
    type = "permission_error"
    code = "forbidden"


class NotFound(SwitchboardError):
    status = 404
    type = "not_found"
    code = "not_found"


class Conflict(SwitchboardError):
    status = 409
    type = "conflict"
    code = "conflict"


class PayloadTooLarge(SwitchboardError):
    status = 413
    type = "invalid_request_error"
    code = "payload_too_large"


class UnsupportedMediaType(SwitchboardError):
    status = 415
    type = "invalid_request_error"
    code = "unsupported_media_type"


class OutputValidationFailed(SwitchboardError):
    """No output satisfying the contract could be had (after the corrective retry)."""

    status = 422
    type = "output_validation_error"
    code = "output_validation_failed"

    def __init__(self, message: str, *, attempts: list | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.attempts = list(attempts or [])


class RateLimited(SwitchboardError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limited"


class QuotaExceeded(SwitchboardError):
    status = 429
    type = "quota_error"
    code = "ai_quota_exceeded"


class UpstreamUnavailable(SwitchboardError):
    """Every deployment of the ladder failed or was skipped."""

    status = 503
    type = "upstream_error"
    code = "upstream_unavailable"

    def __init__(
        self,
        message: str = "No model deployment could answer.",
        *,
        attempts: list | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.attempts = list(attempts or [])


class StreamInterrupted(SwitchboardError):
    """The provider failed after the first token had been sent to the caller."""

    status = 502
    type = "upstream_error"
    code = "stream_interrupted"

    def __init__(self, message: str, *, attempts: list | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.attempts = list(attempts or [])


class RoutingConfigError(Exception):
    """The routing file (config/models.yaml) is invalid; raised at load time."""


# --- provider attempt failures -----------------------------------------------------------------


class ProviderError(Exception):
    """One failed attempt at one deployment."""

    retryable = True
    kind = "provider_error"

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class ProviderRateLimited(ProviderError):
    kind = "rate_limited"


class ProviderServerError(ProviderError):
    kind = "server_error"


class ProviderTimeout(ProviderError):
    kind = "timeout"


class ProviderConnectionError(ProviderError):
    kind = "connection_error"


class ProviderBadResponse(ProviderError):
    """A 200 whose body is not what the wire format promises."""

    kind = "bad_response"


class ProviderRequestRejected(ProviderError):
    """A 4xx other than 429: retrying the same request cannot help."""

    retryable = False
    kind = "rejected"


class UnsupportedOperation(ProviderError):
    retryable = False
    kind = "unsupported"
