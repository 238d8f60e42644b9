"""The WebSocket API (`ws(s)://HOST/ws/v1/chat`): many requests on one socket, told apart by id.

Authentication: `Authorization: Bearer <key>` on the handshake, or a first frame
`{"type": "auth", "api_key": "…"}`. The key is checked again for each request (as REST does),
so a key revoked while a socket is open stops working on its next request.

Frames in:  {"id", "type": "chat", <chat-completions fields>}, {"id", "type": "completion",
            <completions fields>}, {"id", "type": "cancel"}, {"type": "auth", "api_key"}.
Frames out: {"id", "type": "token", "text"} (one a token), {"id", "type": "done", "finish_reason",
            "usage"}, {"id", "type": "error", "error": {OpenAI error object}}, {"type": "ready"}
            after a good auth frame.

Each request is a RequestSession (interface `ws.chat` or `ws.completion` on its usage row);
`cancel` cancels the session, which stops the generation in the worker and ends the request
with a `done` frame whose finish_reason is `cancelled`. A bad frame gets an error frame and
the socket stays open; closing the socket cancels what it still has running.
"""

import asyncio
import json
import logging

from channels.generic.websocket import AsyncWebsocketConsumer

from core.encoding import json_bytes
from core.actions import scope_origin
from core.errors import ApiError
from inference.session import Done, Failed, RequestSession, Text

log = logging.getLogger(__name__)

KINDS = ("chat", "completion")
MAX_REQUESTS = 16  # in flight on one socket


class ApiSocketConsumer(AsyncWebsocketConsumer):
    channel_layer_alias = None  # each request's session has its own reply channel

    async def connect(self):
        self.authorization = dict(self.scope["headers"]).get(b"authorization", b"").decode("latin-1")
        self.requests: dict[str, tuple[RequestSession, asyncio.Task]] = {}
        await self.accept()

    async def disconnect(self, code):
        for session, task in list(self.requests.values()):
            task.cancel()
            await session.cancel()

    async def send_frame(self, frame: dict) -> None:
        await self.send(text_data=json_bytes(frame).decode())

    async def send_error(self, id, error: ApiError) -> None:
        await self.send_frame({"id": id, "type": "error", "error": error.body()["error"]})

    async def receive(self, text_data=None, bytes_data=None):
        try:
            frame = json.loads(text_data if text_data is not None else bytes_data)
        except ValueError:
            await self.send_error(None, ApiError(400, "A frame must be a JSON object.", code="invalid_frame"))
            return
        if not isinstance(frame, dict):
            await self.send_error(None, ApiError(400, "A frame must be a JSON object.", code="invalid_frame"))
            return
        kind, id = frame.get("type"), frame.get("id")
        if kind == "auth":
            await self.authenticate(frame)
        elif id is None or not isinstance(id, (str, int)) or isinstance(id, bool):
            await self.send_error(id, ApiError(400, "A frame needs an `id` (a string or a number).",
                                               param="id", code="invalid_frame"))
        elif kind == "cancel":
            await self.cancel(id)
        elif kind in KINDS:
            await self.start(id, kind, frame)
        else:
            await self.send_error(id, ApiError(400, "`type` must be chat, completion, cancel or auth.",
                                               param="type", code="invalid_frame"))

    async def authenticate(self, frame: dict) -> None:
        key = frame.get("api_key")
        authorization = f"Bearer {key}" if isinstance(key, str) else ""
        session = RequestSession(interface="ws.auth")
        try:
            await session.authenticate(authorization)
        except ApiError as error:
            await self.send_error(frame.get("id"), error)
            return
        self.authorization = authorization
        await self.send_frame({"type": "ready"})

    async def start(self, id, kind: str, frame: dict) -> None:
        if id in self.requests:
            await self.send_error(id, ApiError(400, f"A request with id {id!r} is still running.",
                                               param="id", code="duplicate_id"))
            return
        session = RequestSession(interface=f"ws.{kind}", kind=kind, origin=scope_origin(self.scope))
        try:
            if len(self.requests) >= MAX_REQUESTS:
                raise ApiError(429, f"At most {MAX_REQUESTS} requests at a time on one socket.",
                               code="rate_limit_exceeded")
            body = {k: v for k, v in frame.items() if k not in ("id", "type")}
            await session.start({**body, "stream": True}, authorization=self.authorization)
        except ApiError as error:
            await session.fail(error)  # a no-op where the session has recorded it already
            await self.send_error(id, error)
            return
        self.requests[id] = (session, asyncio.create_task(self.relay(id, session)))

    async def relay(self, id, session: RequestSession) -> None:
        try:
            async for event in session.events():
                if isinstance(event, Text):
                    for text in event.pieces:
                        await self.send_frame({"id": id, "type": "token", "text": text})
                elif isinstance(event, Done):
                    await self.send_frame({"id": id, "type": "done", "finish_reason": event.finish_reason,
                                           "usage": event.usage})
                elif isinstance(event, Failed):
                    await self.send_error(id, event.error)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("relaying request %s failed", session.request_id)
            await session.cancel()
        finally:
            if self.requests.get(id, (None,))[0] is session:  # not a newer request that reuses the id
                del self.requests[id]

    async def cancel(self, id) -> None:
        entry = self.requests.pop(id, None)
        if entry is None:
            await self.send_error(id, ApiError(404, f"No request with id {id!r} is running.", param="id",
                                               code="not_found"))
            return
        session, task = entry
        task.cancel()
        await session.cancel()
        call = session.call
        await self.send_frame({"id": id, "type": "done", "finish_reason": "cancelled",
                               "usage": {"prompt_tokens": call.prompt_tokens,
                                         "completion_tokens": call.completion_tokens,
                                         "total_tokens": call.prompt_tokens + call.completion_tokens}})
