"""The request id in every log line: the web process sets it when a request starts, the worker
when it takes the request's job (the id travels in the job), so one id follows a request
through both processes. `LANTHORN_LOG_FORMAT=json` writes each line as a JSON object."""

import contextvars
import logging
import uuid

from asgiref.sync import iscoroutinefunction
from django.utils.decorators import sync_and_async_middleware

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def bind(value: str) -> None:
    """Marks what this thread or task logs from now on as part of request `value`."""
    request_id.set(value)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class NotReadyFilter(logging.Filter):
    """Keeps `/readyz`'s 503 out of django.request's errors: "not ready yet" is the answer a
    readiness probe asks for (`lanthorn run` polls it while the worker loads), not a server
    error. Django gives its records the request and the status code."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        return not (getattr(record, "status_code", None) == 503 and getattr(request, "path", "") == "/readyz")


@sync_and_async_middleware
def RequestIdMiddleware(get_response):
    """Gives each request to Django's views an id, in its log lines and its `X-Request-Id`."""

    if iscoroutinefunction(get_response):
        async def middleware(request):
            value = uuid.uuid4().hex
            bind(value)
            response = await get_response(request)
            response.setdefault("X-Request-Id", value)
            return response
    else:
        def middleware(request):
            value = uuid.uuid4().hex
            bind(value)
            response = get_response(request)
            response.setdefault("X-Request-Id", value)
            return response
    return middleware
