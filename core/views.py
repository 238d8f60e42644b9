"""Django's error pages, in OpenAI's error shape for the API's paths (HTML stays for the console)."""

from django.http import JsonResponse
from django.views import defaults

from core.errors import ApiError

API_PREFIXES = ("/v1/", "/api/", "/registry/")


def _json(request) -> bool:
    return request.path.startswith(API_PREFIXES)


def not_found(request, exception):
    if _json(request):
        error = ApiError(404, f"There is no {request.path} here.", code="not_found")
        return JsonResponse(error.body(), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _json(request):
        error = ApiError(500, "The server failed to handle the request.", code="server_error")
        return JsonResponse(error.body(), status=500)
    return defaults.server_error(request)
