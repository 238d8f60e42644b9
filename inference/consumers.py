"""The OpenAI-compatible completion endpoints, as Channels consumers: the SSE door.

The request's lifecycle (auth, validation, queue, events, watchdog, cancel, usage row) is the
`RequestSession`'s; this consumer turns its events into the HTTP response: SSE chunks when
`stream` is true, one JSON body otherwise. The client going away (`http.disconnect`) cancels
the session, which stops the generation in the worker.

These endpoints bypass Django's middleware on purpose: in an async request each of Django's
middleware classes costs two thread hops, about 10 ms of the time to first token here, and
none of them (sessions, CSRF, messages) applies to API-key requests.
"""

import asyncio
import logging

from channels.exceptions import StopConsumer
from channels.generic.http import AsyncHttpConsumer

from core.encoding import json_bytes
from core.errors import ApiError
from inference import openai_format
from inference.session import Done, Failed, RequestSession, Text

log = logging.getLogger(__name__)

SSE_HEADERS = [(b"Content-Type", b"text/event-stream"), (b"Cache-Control", b"no-cache"),
               (b"X-Accel-Buffering", b"no")]
CACHE_HIT = [(b"X-Lanthorn-Cache", b"hit")]


class CompletionConsumer(AsyncHttpConsumer):
    # The session subscribes a reply channel of its own; the consumer needs none.
    channel_layer_alias = None

    def __init__(self, kind: str = "chat"):
        super().__init__()
        self.kind = kind
        self.session: RequestSession | None = None
        self.pump: asyncio.Task | None = None

    async def http_request(self, message):
        self.body.append(message.get("body", b""))
        if message.get("more_body"):
            return
        self.session = session = RequestSession(interface=self.scope["path"], kind=self.kind)
        try:
            if self.scope["method"] != "POST":
                error = ApiError(405, "Use POST for this endpoint.", code="method_not_allowed")
                await session.fail(error)
                raise error
            headers = dict(self.scope["headers"])
            await session.authenticate(headers.get(b"authorization", b"").decode("latin-1"))
            prepared = await session.start(b"".join(self.body))
        except ApiError as error:
            await self._send_error(error)
            raise StopConsumer()
        self.pump = asyncio.create_task(self._respond(prepared.stream, prepared.include_usage,
                                                      CACHE_HIT if prepared.cached is not None else []))

    async def http_disconnect(self, message):
        if self.pump is not None:
            self.pump.cancel()
        if self.session is not None:
            await self.session.cancel()
        raise StopConsumer()

    async def _respond(self, stream: bool, include_usage: bool, extra: list) -> None:
        call = self.session.call
        format = openai_format.Formatter(
            kind=self.kind, request_id=call.request_id, model=call.model_name, created=call.created,
            fingerprint=f"lanthorn-{call.version_digest[:12]}", include_usage=include_usage)
        started, first, parts = False, True, []
        try:
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
                        await self.send_response(200, json_bytes(body),
                                                 headers=[(b"Content-Type", b"application/json"), *extra])
                        return
                    if not started:
                        await self.send_headers(status=200, headers=SSE_HEADERS + extra)
                    await self.send_body(format.final_chunks(finish_reason=event.finish_reason, first=first,
                                                             usage=event.usage))
                elif isinstance(event, Failed):
                    if started:  # the status line has gone: the error travels as an SSE event
                        await self.send_body(event.error.sse() + openai_format.DONE)
                    else:
                        await self._send_error(event.error)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the response to request %s failed", call.request_id)
            await self.session.cancel()

    async def _send_error(self, error: ApiError) -> None:
        headers = [(b"Content-Type", b"application/json")]
        headers += [(k.encode(), v.encode()) for k, v in error.headers.items()]
        await self.send_response(error.status, json_bytes(error.body()), headers=headers)
