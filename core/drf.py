"""DRF's exception handler, which gives DRF's errors and the ApiErrors that services raise OpenAI's
shape. Apart from core/errors.py, so that processes without DRF views (the workers) do not import
DRF."""

from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler

from core.errors import ApiError


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
