"""TEMPORARY (lead): replaced by helper-4's hierarchy."""


class SwitchboardError(Exception):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None,
                 status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code:
            self.code = code
        if status:
            self.status = status
        self.retry_after = retry_after


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
