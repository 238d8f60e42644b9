"""The OpenAI-compatible completion endpoints, as Channels consumers.

A request's consumer subscribes to its own channel on the channel layer, enqueues the
request for a worker with that channel as the reply address, and turns what the worker
publishes there (`inference.started`, `inference.token`, `inference.done`,
`inference.error`) into the HTTP response: SSE chunks when `stream` is true, one JSON body
otherwise. The client going away (`http.disconnect`) stops the generation in the worker.
Whatever happens, the request leaves one usage row.

These endpoints bypass Django's middleware on purpose: in an async request each of Django's
middleware classes costs two thread hops, about 10 ms of the time to first token here, and
none of them (sessions, CSRF, messages) applies to API-key requests.
"""

import asyncio
import time

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.http import AsyncHttpConsumer
from channels.layers import get_channel_layer
from django.conf import settings

from inference import openai_format, services
from inference.errors import ApiError

# A pool of threads keeps its database connections across requests.
start_request = database_sync_to_async(services.start_request, thread_sensitive=False)
finish_request = database_sync_to_async(services.finish_request, thread_sensitive=False)
# These two only talk to Redis.
cancel_request = sync_to_async(services.cancel_request, thread_sensitive=False)
worker_alive = sync_to_async(services.worker_alive, thread_sensitive=False)

WATCH_INTERVAL = 2.0  # seconds between checks that a worker is still there

_anchored: set = set()


class CompletionConsumer(AsyncHttpConsumer):
    kind = "chat"  # or "completion"

    def __init__(self, kind: str = "chat"):
        super().__init__()
        self.kind = kind

    async def __call__(self, scope, receive, send):
        # The pub/sub layer's reader naps 0.1 s at a time while its process has no subscription;
        # a channel that stays subscribed keeps it awake for the first request after a quiet spell.
        layer = get_channel_layer()
        if layer not in _anchored:
            _anchored.add(layer)
            await layer.new_channel(prefix="anchor.")
        self.watchdog = None
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self.watchdog:  # however the request ended: done, failed or disconnected
                self.watchdog.cancel()

    async def dispatch(self, message):
        # Channels closes stale database connections before every message, a thread hop per
        # token batch; the database calls here go through database_sync_to_async, which does it.
        await getattr(self, message["type"].replace(".", "_"))(message)

    async def http_request(self, message):
        self.body.append(message.get("body", b""))
        if message.get("more_body"):
            return
        headers = dict(self.scope["headers"])
        self.call = services.ApiCall(endpoint=self.scope["path"])
        self.finished = False
        self.started_response = False
        self.first_text = True
        self.parts: list[str] = []
        self.worker: str | None = None
        self.last_event = time.monotonic()
        if self.scope["method"] != "POST":
            await self._fail(ApiError(405, "Use POST for this endpoint.", code="method_not_allowed"))
            raise StopConsumer()
        try:
            self.prepared = await start_request(
                call=self.call, kind=self.kind, body=b"".join(self.body), reply_channel=self.channel_name,
                authorization=headers.get(b"authorization", b"").decode("latin-1"))
        except ApiError as error:
            await self._fail(error, enqueued=False)
            raise StopConsumer()
        self.format = openai_format.Formatter(
            kind=self.kind, request_id=self.call.request_id, model=self.call.model_name,
            created=self.call.created, fingerprint=f"lanthorn-{self.call.version_digest[:12]}",
            include_usage=self.prepared.include_usage)
        self.watchdog = asyncio.create_task(self._watch())

    async def http_disconnect(self, message):
        if not self.finished and hasattr(self, "call"):
            self.finished = True
            self.call.status_code = 200 if self.started_response else 499
            self.call.outcome = self.call.finish_reason = "cancelled"
            await cancel_request(request_id=self.call.request_id)
            await finish_request(call=self.call)
        raise StopConsumer()

    # Events from the worker.

    async def inference_started(self, message):
        self.worker, self.last_event = message["worker"], time.monotonic()

    async def inference_token(self, message):
        self.last_event = time.monotonic()
        if self.finished:
            return
        if self.call.ttft is None:
            self.call.ttft = self.last_event - self.call.started
        texts = message["text"]
        self.call.completion_tokens += len(texts)
        if not self.prepared.stream:
            self.parts.extend(texts)
            return
        if not self.started_response:
            await self._start_sse()
        chunks = []
        for text in texts:
            chunks.append(self.format.text_chunk(text, first=self.first_text))
            self.first_text = False
        await self.send_body(b"".join(chunks), more_body=True)

    async def inference_done(self, message):
        if self.finished:
            return
        call = self.call
        call.prompt_tokens, call.completion_tokens = message["prompt_tokens"], message["completion_tokens"]
        call.finish_reason = message["finish_reason"]
        usage = openai_format.usage(call.prompt_tokens, call.completion_tokens)
        self.finished = True
        await finish_request(call=call)  # before the last byte, so a client that sees it sees the row
        if self.prepared.stream:
            if not self.started_response:
                await self._start_sse()
            await self.send_body(self.format.final_chunks(finish_reason=call.finish_reason,
                                                          first=self.first_text, usage=usage))
        else:
            body = self.format.response(text="".join(self.parts), finish_reason=call.finish_reason, usage=usage)
            await self.send_response(200, openai_format.json_bytes(body),
                                     headers=[(b"Content-Type", b"application/json")])

    async def inference_error(self, message):
        await self._fail(ApiError.from_dict(message["error"]))

    # Helpers.

    async def _start_sse(self):
        self.started_response = True
        await self.send_headers(status=200, headers=[
            (b"Content-Type", b"text/event-stream"), (b"Cache-Control", b"no-cache"),
            (b"X-Accel-Buffering", b"no")])

    async def _fail(self, error: ApiError, *, enqueued: bool = True):
        """Ends the response with an error: its own status before any text, an SSE error after."""
        if self.finished:
            return
        self.finished = True
        self.call.fail(error)
        if enqueued:
            await cancel_request(request_id=self.call.request_id)  # no worker should go on with it
        await finish_request(call=self.call)
        if self.started_response:
            await self.send_body(error.sse() + openai_format.DONE)
        else:
            headers = [(b"Content-Type", b"application/json")]
            headers += [(k.encode(), v.encode()) for k, v in error.headers.items()]
            await self.send_response(error.status, openai_format.json_bytes(error.body()), headers=headers)

    async def _watch(self):
        """Never hang: fail the request when no worker takes it, or when its worker dies."""
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            idle = time.monotonic() - self.last_event
            if idle < WATCH_INTERVAL:
                continue
            if not await worker_alive(worker=self.worker):
                if self.worker is None:
                    error = ApiError(503, "No inference worker is running.", code="no_worker")
                else:
                    error = ApiError(503, "The worker serving this request stopped.", code="worker_lost")
            elif idle > settings.LANTHORN_WORKER_TIMEOUT:
                error = ApiError(503, f"No answer from a worker in {idle:.0f} seconds.", code="timeout")
            else:
                continue
            # Through the channel layer, so it queues behind any event already on its way.
            await self.channel_layer.send(self.channel_name,
                                          {"type": "inference.error", "error": error.as_dict()})
            return
