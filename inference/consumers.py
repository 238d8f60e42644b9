"""The HTTP doors as Channels consumers: OpenAI's completions (SSE) and embeddings; the
Ollama-compatible doors (inference/ollama.py) build on the same base.

The request's lifecycle (auth, validation, queue, events, watchdog, cancel, usage row) is the
`RequestSession`'s. `SessionConsumer` is the plumbing every HTTP door shares: read the body,
authenticate, start the session, hand its events to the door's `respond`, and cancel the
session when the client goes away (`http.disconnect`), which stops the generation in the worker.
A door only says how to read its body and how to write events and errors.

These endpoints bypass Django's middleware on purpose: in an async request each of Django's
middleware classes costs two thread hops, about 10 ms of the time to first token here, and
none of them (sessions, CSRF, messages) applies to API-key requests.
"""

import asyncio
import base64
import logging
import struct

from channels.exceptions import StopConsumer
from channels.generic.http import AsyncHttpConsumer

from core.actions import scope_origin
from core.encoding import json_bytes
from core.errors import ApiError
from core.http import REFUSED
from inference import openai_format
from inference.services import Prepared
from inference.session import Done, Embedded, Failed, RequestSession, Text, unavailable

log = logging.getLogger(__name__)

SSE_HEADERS = [(b"Content-Type", b"text/event-stream"), (b"Cache-Control", b"no-cache"),
               (b"X-Accel-Buffering", b"no")]
JSON_HEADERS = [(b"Content-Type", b"application/json")]
CACHE_HIT = [(b"X-Lanthorn-Cache", b"hit")]


class SessionConsumer(AsyncHttpConsumer):
    """One POST request through a RequestSession. Subclasses write `respond` (and may override
    `request_data`, `interface` and `error_body`)."""

    # The session subscribes a reply channel of its own; the consumer needs none.
    channel_layer_alias = None
    # Whether `request_data` leaves the body as it came, so that the key can be checked in the
    # same trip as the rest of the start (a door that parses the body itself checks it first).
    raw_body = True

    def __init__(self, kind: str = "chat"):
        super().__init__()
        self.kind = kind
        self.session: RequestSession | None = None
        self.pump: asyncio.Task | None = None
        self.response_started = False

    def interface(self) -> str:
        """The door's name on the usage row."""
        return self.scope["path"]

    def request_data(self, body: bytes) -> tuple[str, dict | bytes]:
        """The request kind and what the session validates (here: the JSON body as it came)."""
        return self.kind, body

    def error_body(self, error: ApiError) -> dict:
        return error.body()

    async def respond(self, prepared: Prepared) -> None:
        raise NotImplementedError

    async def http_request(self, message):
        authorization = None
        if self.session is None:  # the first part of the body
            self.session = session = RequestSession(interface=self.interface(), kind=self.kind,
                                                    origin=scope_origin(self.scope))
            authorization = dict(self.scope["headers"]).get(b"authorization", b"").decode("latin-1")
            if self.raw_body and self.scope["method"] == "POST" and not message.get("more_body"):
                # The whole body came at once (the usual case): the session checks the key in
                # the same trip to a worker thread as the rest of the start.
                self.body.append(message.get("body", b""))
                return await self._start(authorization)
            try:  # check the key before reading on
                await session.authenticate(authorization)
                if self.scope["method"] != "POST":
                    error = ApiError(405, "Use POST for this endpoint.", code="method_not_allowed")
                    await session.fail(error)
                    raise error
            except ApiError as error:
                await self.send_error(error)
                raise StopConsumer()
        self.body.append(message.get("body", b""))
        if message.get("more_body"):
            return
        await self._start()

    async def _start(self, authorization: str | None = None) -> None:
        session = self.session
        try:
            kind, data = self.request_data(b"".join(self.body))
            prepared = await session.start(data, kind=kind, authorization=authorization)
        except ApiError as error:
            await session.fail(error)  # a no-op where the session has recorded it already
            await self.send_error(error)
            raise StopConsumer()
        self.pump = asyncio.create_task(self._pump(prepared))

    async def http_disconnect(self, message):
        if self.pump is not None:
            self.pump.cancel()
        if self.session is not None:
            refused = message.get(REFUSED)  # the body limit answered the client (413, 408)
            await (self.session.fail(refused) if refused is not None else self.session.cancel())
        raise StopConsumer()

    async def _pump(self, prepared: Prepared) -> None:
        try:
            await self.respond(prepared)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("the response to request %s failed", self.session.request_id)
            error = unavailable(exc)
            await self.session.fail(error)
            if self.response_started:
                await self.send_body(b"")  # end the response: the client must not wait on it
            else:
                await self.send_error(error)

    async def send_headers(self, *, status=200, headers=None) -> None:
        """Every response names its request (the id in the usage row and in both processes' logs)."""
        self.response_started = True
        await super().send_headers(status=status, headers=[*(headers or []), (b"X-Request-Id",
                                                                               self.session.request_id.encode())])

    async def send_json(self, status: int, body: dict, headers=()) -> None:
        await self.send_response(status, json_bytes(body), headers=[*JSON_HEADERS, *headers])

    async def send_error(self, error: ApiError) -> None:
        headers = [(k.encode(), v.encode()) for k, v in error.headers.items()]
        await self.send_json(error.status, self.error_body(error), headers)


class CompletionConsumer(SessionConsumer):
    """POST /v1/chat/completions and /v1/completions: SSE chunks when `stream`, else one body."""

    async def respond(self, prepared: Prepared) -> None:
        stream, call = prepared.stream, self.session.call
        format = openai_format.Formatter(
            kind=self.kind, request_id=call.request_id, model=call.model_name, created=call.created,
            fingerprint=f"lanthorn-{call.version_digest[:12]}", include_usage=prepared.include_usage)
        started, first, parts = False, True, []
        extra = CACHE_HIT if prepared.cached is not None else []
        async for event in self.session.events():
            if isinstance(event, Text):
                if not stream:
                    parts.extend(event.pieces)
                    continue
                if not started:
                    started = True
                    await self.send_headers(status=200, headers=SSE_HEADERS + extra)
                chunks = []
                for text in event.pieces:
                    chunks.append(format.text_chunk(text, first=first))
                    first = False
                await self.send_body(b"".join(chunks), more_body=True)
            elif isinstance(event, Done):
                if not stream:
                    body = format.response(text="".join(parts), finish_reason=event.finish_reason,
                                           usage=event.usage)
                    await self.send_json(200, body, extra)
                    return
                if not started:
                    await self.send_headers(status=200, headers=SSE_HEADERS + extra)
                await self.send_body(format.final_chunks(finish_reason=event.finish_reason, first=first,
                                                         usage=event.usage))
            elif isinstance(event, Failed):
                if started:  # the status line has gone: the error travels as an SSE event
                    await self.send_body(event.error.sse() + openai_format.DONE)
                else:
                    await self.send_error(event.error)


def base64_vector(vector: list[float]) -> str:
    """OpenAI's `encoding_format: base64`: the little-endian float32 array, base64-encoded."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


class EmbeddingsConsumer(SessionConsumer):
    """POST /v1/embeddings: OpenAI's list of embeddings."""

    async def respond(self, prepared: Prepared) -> None:
        async for event in self.session.events():
            if isinstance(event, Embedded):
                encode = base64_vector if prepared.encoding_format == "base64" else list
                await self.send_json(200, {
                    "object": "list", "model": self.session.call.model_name, "usage": event.usage,
                    "data": [{"object": "embedding", "index": i, "embedding": encode(v)}
                             for i, v in enumerate(event.vectors)]})
            elif isinstance(event, Failed):
                await self.send_error(event.error)
