"""Limits on what an HTTP request may send, for every route (the consumers and Django's).

`BodyLimit` wraps the ASGI HTTP application: a body larger than LANTHORN_MAX_BODY_BYTES is refused
with 413 by its Content-Length before any of it is read, or as soon as the running total passes
the limit (chunked bodies, lying headers); a body that does not arrive within
LANTHORN_BODY_TIMEOUT seconds is refused with 408. The refusal is an OpenAI error object; the
application underneath then sees the client go away (`http.disconnect`, carrying the error under
REFUSED) and whatever it still sends is dropped. Refusals are counted (see `core.anonymous`); a
door that had already checked the request's key (a chunked body refused midway) records the
error on the request's usage row.
"""

import asyncio
import time

from django.conf import settings

from core.anonymous import count_refusal
from core.encoding import json_bytes
from core.errors import ApiError

REFUSED = "lanthorn.refused"  # the ApiError that the client got, in the disconnect the app sees


def too_large() -> ApiError:
    return ApiError(413, f"The request body is larger than the limit of {settings.LANTHORN_MAX_BODY_BYTES} bytes.",
                    code="request_too_large")


def too_slow() -> ApiError:
    return ApiError(408, f"The request body did not arrive within {settings.LANTHORN_BODY_TIMEOUT:.0f} seconds.",
                    code="request_timeout")


async def send_error(send, error: ApiError) -> None:
    headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": json_bytes(error.body())})


class BodyLimit:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = settings.LANTHORN_MAX_BODY_BYTES
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await count_refusal("request_too_large")
            return await send_error(send, too_large() if length.isdigit() else
                                    ApiError(400, "The Content-Length header is not a number."))
        state = {"received": 0, "more": True, "refused": False, "started": False}
        deadline = time.monotonic() + settings.LANTHORN_BODY_TIMEOUT

        async def refuse(error: ApiError) -> dict:
            state["refused"] = True
            await count_refusal(error.code)
            if not state["started"]:
                await send_error(send, error)
            return {"type": "http.disconnect", REFUSED: error}

        async def limited_receive():
            if state["refused"]:
                return {"type": "http.disconnect"}
            if not state["more"]:  # the body is in: what follows is the client going away
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), timeout=max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                return await refuse(too_slow())
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                state["more"] = message.get("more_body", False)
                if state["received"] > limit:
                    return await refuse(too_large())
            return message

        async def guarded_send(message):
            if state["refused"]:
                return  # the client has its answer already
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        await self.app(scope, limited_receive, guarded_send)
