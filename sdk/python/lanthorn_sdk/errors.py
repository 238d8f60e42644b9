"""Typed errors: one class per HTTP status the server uses, each carrying the OpenAI error object."""

from __future__ import annotations


class LanthornError(Exception):
    """An error answer from Lanthorn (its OpenAI error object), or a failure to reach it."""

    status: int | None = None

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 param: str | None = None, type: str | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.message, self.code, self.param, self.type = message, code, param, type
        self.retry_after = retry_after
        if status is not None:
            self.status = status


class BadRequestError(LanthornError):
    status = 400


class AuthenticationError(LanthornError):
    status = 401


class PermissionDeniedError(LanthornError):
    status = 403


class NotFoundError(LanthornError):
    status = 404


class RateLimitError(LanthornError):
    status = 429


class ServiceUnavailableError(LanthornError):
    status = 503


class APIConnectionError(LanthornError):
    """Lanthorn could not be reached (refused, timed out, dropped)."""


BY_STATUS = {cls.status: cls for cls in
             (BadRequestError, AuthenticationError, PermissionDeniedError, NotFoundError, RateLimitError,
              ServiceUnavailableError)}


def from_response(status: int, body: dict | None, retry_after: float | None) -> LanthornError:
    error = (body or {}).get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {"message": f"HTTP {status}"}
    cls = BY_STATUS.get(status, LanthornError)
    return cls(error.get("message") or f"HTTP {status}", status=status, code=error.get("code"),
               param=error.get("param"), type=error.get("type"), retry_after=retry_after)
