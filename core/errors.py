"""OpenAI's error object, for every error the API returns."""

from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler

from core.encoding import sse


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, code: str | None = None, param: str | None = None,
                 type: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.type = type or ("invalid_request_error" if status < 500 else "server_error")
        self.headers = headers or {}

    @classmethod
    def from_dict(cls, error: dict) -> "ApiError":
        return cls(error.get("status", 500), error["message"], code=error.get("code"),
                   param=error.get("param"), type=error.get("type"))

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def as_dict(self) -> dict:
        """The error as an event carries it (see from_dict)."""
        return {"status": self.status, "message": self.message, "code": self.code, "param": self.param,
                "type": self.type}

    def sse(self) -> bytes:
        return sse(self.body())


def invalid_key(message: str) -> ApiError:
    return ApiError(401, message, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


def openai_exception_handler(exc, context):
    """DRF's errors, and ApiErrors raised by services, in OpenAI's shape."""
    if isinstance(exc, ApiError):
        return Response(exc.body(), status=exc.status, headers=exc.headers)
    if isinstance(exc, RecursionError):  # a JSON body nested deeper than the parser goes
        exc = ApiError(400, "We could not parse the JSON body of your request (it is nested too deeply).")
        return Response(exc.body(), status=exc.status)
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        code, kind = "invalid_api_key", "invalid_request_error"
        response.status_code = 401
    elif isinstance(exc, exceptions.NotFound):
        code, kind = "not_found", "invalid_request_error"
    elif isinstance(exc, exceptions.PermissionDenied):
        code, kind = "permission_denied", "invalid_request_error"
    else:
        code, kind = getattr(exc, "default_code", None), "invalid_request_error"
    detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
    response.data = {"error": {"message": str(detail), "type": kind, "param": None, "code": code}}
    return response
