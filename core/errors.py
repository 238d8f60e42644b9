"""OpenAI's error object, for every error the API returns (DRF's errors take its shape in core/drf.py)."""

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
