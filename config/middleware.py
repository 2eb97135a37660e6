"""Request id: accepted from the caller when well-formed, generated otherwise, echoed back."""

import re
import uuid

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from config.logging import request_id_var

_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _request_id_for(request) -> str:
    incoming = request.headers.get("X-Request-Id", "")
    return incoming if _VALID_ID.match(incoming) else f"req_{uuid.uuid4().hex}"


class RequestIdMiddleware:
    """Sets ``request.request_id`` and the ``X-Request-Id`` response header on every response."""

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
        request.request_id = _request_id_for(request)
        token = request_id_var.set(request.request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-Id"] = request.request_id
        return response

    async def __acall__(self, request):
        request.request_id = _request_id_for(request)
        token = request_id_var.set(request.request_id)
        try:
            response = await self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-Id"] = request.request_id
        return response
