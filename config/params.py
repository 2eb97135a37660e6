"""Query-string parameters of the API, checked into clear 400s."""

from __future__ import annotations

from gateway.errors import InvalidRequest


def int_query_param(request, name: str, default: int, low: int, high: int) -> int:
    """``?name=`` as an integer in [low, high], ``default`` when absent, else a 400."""
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be an integer.", param=name) from None
    if not low <= value <= high:
        raise InvalidRequest(f"{name} must be between {low} and {high}.", param=name)
    return value
