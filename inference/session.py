"""One request's lifecycle, the same for every door into the engine.

A door (the SSE and embeddings endpoints, the playground's WebSocket, the CLI shell, the
WebSocket API, the Ollama API, gRPC) only translates its wire format; an embeddings request ends
with Embedded instead of Text and Done. The `RequestSession` does the rest:

    session = RequestSession(interface="api.chat", kind="chat")   # or completion, embedding
    await session.authenticate(authorization)    # or RequestSession(..., user=request.user)
    prepared = await session.start(body)         # validate, queue on the model's queue
    async for event in session.events():         # Started, Text, then Done or Failed
        ...                                      # encode it for the client
    await session.cancel()                       # the client went away or pressed Stop

The session owns its reply channel on the channel layer, the watchdog (no worker, a worker
that died, a worker that went quiet, a hard deadline), the cancel flag the worker polls and
the request's one usage row, which is written exactly once, before the last event reaches
the door (so a client that has seen the end of the answer can already see the row), unless the
database takes more than RECORD_WAIT seconds: then the request ends and its row follows
(`services.finish_request` retries it in the background, or logs it whole at ERROR).
"""

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from redis.exceptions import RedisError

from django.db import DatabaseError

from console import limits
from console import services as console_services
from core import metrics
from core.anonymous import count_refusal
from core.errors import ApiError, invalid_key
from core.logs import bind
from core.redis import redis_client
from core.workers import serving, worker_alive
from inference import answer_cache, services
from inference.cancel import request_cancel

log = logging.getLogger(__name__)

WATCH_INTERVAL = 1.0  # seconds between checks that a worker is still there
# Seconds the end of a request waits for its usage row: a database that takes longer (a lock held
# by another) does not hold the client; the row is written when it answers (services.retrier).
RECORD_WAIT = 5.0


@dataclass(frozen=True)
class Started:
    """A worker took the request."""

    worker: str


@dataclass(frozen=True)
class Text:
    """Text the model generated since the last event, one piece per token."""

    pieces: list[str]

    @property
    def text(self) -> str:
        return "".join(self.pieces)


@dataclass(frozen=True)
class Done:
    finish_reason: str  # stop, length or cancelled
    prompt_tokens: int
    completion_tokens: int

    @property
    def usage(self) -> dict:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens}


@dataclass(frozen=True)
class Embedded:
    """The vectors of an embeddings request, one per input, in order (final)."""

    vectors: list[list[float]]
    prompt_tokens: int

    @property
    def usage(self) -> dict:
        return {"prompt_tokens": self.prompt_tokens, "total_tokens": self.prompt_tokens}


@dataclass(frozen=True)
class Failed:
    error: ApiError


Event = Started | Text | Done | Embedded | Failed

# A pool of threads keeps its database connections across requests.
_authenticate = database_sync_to_async(console_services.authenticate_key, thread_sensitive=False)
# These only talk to Redis.
_cancel = sync_to_async(request_cancel, thread_sensitive=False)
_worker_alive = sync_to_async(worker_alive, thread_sensitive=False)
_serving = sync_to_async(serving, thread_sensitive=False)


def redis_run_id() -> str:
    """The Redis server's run id, new at each start: a request that sees it change lost its stream."""
    return redis_client().info("server")["run_id"]


_redis_run_id = sync_to_async(redis_run_id, thread_sensitive=False)


# The start of a request costs one trip to a worker thread, not one per step: each trip is a
# thread hop on the way to the first token (measured: 2 to 4 ms each on 2 busy cores).
def admit_request(*, call: services.ApiCall, kind: str, data, user) -> tuple[services.Prepared, object]:
    """Validates the request, finds its model and admits it under the key's (or the user's) limits."""
    prepared = services.prepare_request(call=call, kind=kind, data=data)
    try:
        reservation = limits.admit(api_key=call.api_key, user=user, model=prepared.model,
                                   request_id=call.request_id, tokens=prepared.estimated_tokens())
    except limits.Refused as refused:
        raise refusal(refused) from None
    except RedisError:
        log.exception("could not check the limits of request %s", call.request_id)
        raise ApiError(503, "Lanthorn cannot reach Redis to check this request's limits.",
                       code="service_unavailable") from None
    return prepared, reservation


def launch_request(*, call: services.ApiCall, prepared: services.Prepared, reply_channel: str) -> str:
    """Queues the request for a worker; returns the run id of the Redis its answer travels through."""
    run_id = redis_run_id()
    services.enqueue_request(call=call, prepared=prepared, reply_channel=reply_channel)
    return run_id


def begin_request(*, call: services.ApiCall, kind: str, data, user, authorization: str | None,
                  reply_channel: str) -> tuple[services.Prepared, object, str | None]:
    """The whole start of a request in one trip to a worker thread: checks the key (when the door
    passes its Authorization header), parses and validates the body, admits it under the limits
    and queues it (unless the response cache answers). Returns (prepared, reservation, run id)."""
    if authorization is not None:
        call.api_key = console_services.authenticate_key(raw=console_services.bearer_token(authorization))
    if isinstance(data, (bytes, str)):
        data = parse_body(data)
    prepared, reservation = admit_request(call=call, kind=kind, data=data, user=user)
    if prepared.cached is not None:  # a cache hit: no worker involved
        return prepared, reservation, None
    try:
        return prepared, reservation, launch_request(call=call, prepared=prepared, reply_channel=reply_channel)
    except Exception:
        if reservation is not None:  # what was reserved for a request that never ran
            try:
                limits.release(reservation, used_tokens=0)
            except Exception:
                log.exception("could not release the limits reserved by request %s", call.request_id)
        raise


def end_request(*, call: services.ApiCall, user, reservation: limits.Reservation | None) -> None:
    """The end of a request in one trip to a worker thread: the limits it reserved given back (first,
    so that a slow database cannot hold them), then its usage row and audit event."""
    if reservation is not None:
        try:
            limits.release(reservation, used_tokens=call.prompt_tokens + call.completion_tokens)
        except Exception:  # the slot expires on its own after LANTHORN_REQUEST_TIMEOUT
            log.exception("could not release the limits reserved by request %s", call.request_id)
    services.finish_request(call=call, user=user)


_end = database_sync_to_async(end_request, thread_sensitive=False)


def unavailable(exc: Exception) -> ApiError:
    """The error for a request that failed because something other than the request went wrong."""
    if isinstance(exc, (RedisError, OSError, DatabaseError)):
        return ApiError(503, "A service Lanthorn needs (Redis or the database) is unavailable; try again.",
                        code="service_unavailable", headers={"Retry-After": "5"})
    return ApiError(500, "The server failed to handle the request.", code="server_error")


def parse_body(body: bytes | str):
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        raise ApiError(400, "We could not parse the JSON body of your request "
                       "(it is not JSON, or it is nested too deeply).") from None

_begin_request = database_sync_to_async(begin_request, thread_sensitive=False)
_store_answer = sync_to_async(answer_cache.store, thread_sensitive=False)

CACHED = "cached"  # the usage row's outcome for an answer that came from the response cache

_anchored: set = set()


async def _anchor(layer) -> None:
    """The pub/sub layer's reader naps 0.1 s at a time while its process has no subscription;
    a channel that stays subscribed keeps it awake for the first request after a quiet spell."""
    if layer not in _anchored:
        await layer.new_channel(prefix="anchor.")
        _anchored.add(layer)


WARM_UP_TIMEOUT = 3  # seconds: a process that cannot make its path ready starts without it


async def warm_up() -> None:
    """What a web process makes ready before it takes requests, so that its first one is as quick
    as the rest: the channel layer's reader, subscribed (see _anchor), and the task queue's
    connection. Without Redis it makes nothing ready: requests then say what is missing."""
    try:
        async with asyncio.timeout(WARM_UP_TIMEOUT):
            await _anchor(get_channel_layer())
            await sync_to_async(services.warm_queue, thread_sensitive=False)()
    except Exception as exc:
        log.warning("could not make the request path ready (%r); the first requests may be slower", exc)


def redis_lost() -> ApiError:
    return ApiError(503, "Redis restarted while the request ran, and its answer was lost; try again.",
                    code="redis_lost", headers={"Retry-After": "2"})


def refusal(refused: limits.Refused) -> ApiError:
    """The API's answer to a request the limits refused, as OpenAI words it."""
    if isinstance(refused, limits.LimitExceeded):
        return ApiError(429, refused.message, code="insufficient_quota" if refused.quota else "rate_limit_exceeded",
                        type="insufficient_quota" if refused.quota else "requests",
                        headers={"Retry-After": str(refused.retry_after)})
    if isinstance(refused, limits.ModelNotAllowed):
        return ApiError(403, refused.message, code="model_not_allowed", param="model")
    return ApiError(403, refused.message, code="permission_denied")


class RequestSession:
    def __init__(self, *, interface: str, kind: str = "chat", user=None, origin: dict | None = None):
        """`interface` names the door on the usage row (`/v1/chat/completions`, `playground`, ...);
        `user` is who asks when there is no API key (a signed-in person, the CLI's user); `origin`
        the client's `source_ip` and `user_agent` for the audit trail (`core.actions.scope_origin`)."""
        self.call = services.ApiCall(endpoint=interface, kind=kind, **(origin or {}))
        self.kind = kind
        self.user = user
        self.prepared: services.Prepared | None = None
        self.reservation: limits.Reservation | None = None
        self.finished = False
        self.sent_text = False
        self._layer = get_channel_layer()
        self._channel: str | None = None
        self._receiver: asyncio.Future | None = None
        self._run_id: str | None = None
        self._pieces: list[str] = []  # the answer so far, when it may go to the response cache

    @property
    def request_id(self) -> str:
        return self.call.request_id

    async def authenticate(self, authorization: str) -> None:
        """Checks an `Authorization: Bearer <key>` header; raises ApiError. A refusal writes no usage
        row (nobody was authenticated, and a flood of them must not grow the table): it is counted
        in `core.anonymous` instead."""
        try:
            self.call.api_key = await _authenticate(raw=console_services.bearer_token(authorization))
        except Exception as exc:
            raise await self._refuse(exc) from exc

    async def _refuse(self, exc: Exception) -> ApiError:
        """The error for a key that could not be checked or was refused, counted, not recorded."""
        self.finished = True
        if isinstance(exc, console_services.InvalidKey):
            await count_refusal(exc.reason)
            return invalid_key(str(exc))
        log.error("could not check the API key of request %s", self.call.request_id, exc_info=exc)
        await count_refusal("key_check_failed")
        return unavailable(exc)

    async def start(self, data: dict | bytes, *, kind: str | None = None,
                    authorization: str | None = None) -> services.Prepared:
        """Validates the request (a JSON body, or its parsed dict: a door that speaks another wire
        format passes the OpenAI-shaped dict it translated, and the `kind` it read from it), admits
        it under the key's (or the user's) limits and queues it for a worker of its model. A door
        that has the whole body at once passes the `authorization` header too, and the key is
        checked in the same trip (else it calls `authenticate` first). Raises ApiError, having
        recorded the failure."""
        bind(self.call.request_id)
        if kind is not None:
            self.kind = kind
        try:
            # Subscribed before the request is queued, so that no event of its worker is missed.
            try:
                await _anchor(self._layer)
                self._channel = await self._layer.new_channel(prefix="req.")
            except Exception:
                if authorization is not None:  # whose request failed, for its usage row
                    await self.authenticate(authorization)
                    authorization = None
                raise
            self.prepared, self.reservation, self._run_id = await _begin_request(
                call=self.call, kind=self.kind, data=data, user=self.user, authorization=authorization,
                reply_channel=self._channel)
        except Exception as exc:
            self._close()
            if self.finished:  # the key was refused already
                raise
            if authorization is not None and self.call.api_key is None:  # the key was not accepted
                raise await self._refuse(exc) from exc
            error = exc if isinstance(exc, ApiError) else unavailable(exc)
            if not isinstance(exc, ApiError):
                log.exception("could not start request %s", self.call.request_id)
            await self.fail(error)
            raise error from (None if exc is error else exc)
        return self.prepared

    async def events(self) -> AsyncIterator[Event]:
        """The request's events until Done, Embedded or Failed (all final). Never hangs: a request whose
        worker is missing, dies or goes quiet ends with Failed."""
        if self.prepared.cached is not None:
            self._close()
            async for event in self._replay(self.prepared.cached):
                yield event
            return
        worker: str | None = None
        last_event = time.monotonic()
        deadline = self.call.started + settings.LANTHORN_REQUEST_TIMEOUT
        self._receiver = asyncio.ensure_future(self._layer.receive(self._channel))
        try:
            while not self.finished:
                # Waiting on the future, not cancelling it: a cancelled receive unsubscribes.
                done, _ = await asyncio.wait({self._receiver}, timeout=WATCH_INTERVAL)
                if self.finished:  # cancel() ran meanwhile, from another task (a Stop button)
                    return
                if not done:
                    error = await self._watch(worker, last_event, deadline)
                    if error is not None:
                        await self._finish(error=error)
                        yield Failed(error)
                        return
                    continue
                try:
                    message, last_event = self._receiver.result(), time.monotonic()
                    self._receiver = asyncio.ensure_future(self._layer.receive(self._channel))
                except Exception:
                    log.warning("request %s lost its reply channel", self.call.request_id, exc_info=True)
                    self._receiver = None
                    error = redis_lost()
                    await self._finish(error=error)
                    yield Failed(error)
                    return
                kind = message["type"]
                if self.finished:
                    return
                if kind == "inference.started":
                    worker = message["worker"]
                    yield Started(worker)
                elif kind == "inference.token":
                    if self.call.ttft is None:
                        self.call.ttft = last_event - self.call.started
                    self.call.completion_tokens += len(message["text"])
                    if self.call.answer is not None:
                        self.call.answer.extend(message["text"])
                    self.sent_text = True
                    if self.prepared.cache_key:
                        self._pieces.extend(message["text"])
                    yield Text(message["text"])
                elif kind == "inference.done":
                    done = Done(message["finish_reason"], message["prompt_tokens"], message["completion_tokens"])
                    call = self.call
                    call.finish_reason = done.finish_reason
                    call.prompt_tokens, call.completion_tokens = done.prompt_tokens, done.completion_tokens
                    if self.prepared.cache_key and done.finish_reason in ("stop", "length"):
                        await self._remember(done)
                    await self._finish()
                    yield done
                    return
                elif kind == "inference.embeddings":
                    embedded = Embedded(message["vectors"], message["prompt_tokens"])
                    self.call.prompt_tokens = embedded.prompt_tokens
                    if self.call.ttft is None:
                        self.call.ttft = last_event - self.call.started
                    await self._finish()
                    yield embedded
                    return
                elif kind == "inference.error":
                    error = ApiError.from_dict(message["error"])
                    await self._finish(error=error)
                    yield Failed(error)
                    return
        finally:
            if not self.finished:  # the door stopped listening without saying why
                await self.cancel()
            self._close()

    async def _replay(self, answer: dict) -> AsyncIterator[Event]:
        """A cache hit: the stored answer's events, as a worker would have sent them."""
        call = self.call
        done = Done(answer["finish_reason"], answer["prompt_tokens"], answer["completion_tokens"])
        call.ttft = time.monotonic() - call.started
        call.finish_reason, call.outcome = done.finish_reason, CACHED
        metrics.CACHE_HITS.labels(call.model_name).inc()
        call.prompt_tokens, call.completion_tokens = done.prompt_tokens, done.completion_tokens
        yield Started(CACHED)
        if answer["pieces"]:
            self.sent_text = True
            yield Text(answer["pieces"])
        await self._finish()
        yield done

    async def _remember(self, done: Done) -> None:
        answer = {"pieces": self._pieces, "finish_reason": done.finish_reason,
                  "prompt_tokens": done.prompt_tokens, "completion_tokens": done.completion_tokens}
        try:
            await _store_answer(self.prepared.cache_key, answer, ttl=self.prepared.cache_ttl)
        except Exception:
            log.warning("could not store the answer of request %s", self.call.request_id, exc_info=True)

    async def cancel(self) -> None:
        """Stops the generation in the worker (it checks between tokens) and records the request
        as cancelled. Does nothing once the request has ended."""
        if self.finished:
            return
        self.call.status_code = 200 if self.sent_text else 499
        self.call.outcome = self.call.finish_reason = "cancelled"
        self.finished = True
        try:
            await _cancel(request_id=self.call.request_id)
        except Exception:
            log.warning("could not flag request %s as cancelled", self.call.request_id, exc_info=True)
        await self._record()
        self._close()

    async def fail(self, error: ApiError) -> None:
        """Ends a request that a door refused before or after it started (a 405, a bad frame)."""
        await self._finish(error=error)

    async def _finish(self, *, error: ApiError | None = None) -> None:
        if self.finished:
            return
        self.finished = True
        if error is not None:
            self.call.fail(error)
            if self.prepared is not None:
                try:
                    await _cancel(request_id=self.call.request_id)  # no worker should go on with it
                except Exception:
                    log.warning("could not flag request %s as cancelled", self.call.request_id, exc_info=True)
        await self._record()

    async def _record(self) -> None:
        """The end of every request, once: its reservation given back, and its usage row. The row
        is waited for RECORD_WAIT seconds at most; its write goes on without the client."""
        reservation, self.reservation = self.reservation, None
        write = asyncio.ensure_future(_end(call=self.call, user=self.user, reservation=reservation))
        try:
            await asyncio.wait_for(asyncio.shield(write), RECORD_WAIT)
        except TimeoutError:
            log.warning("the usage row of request %s is not written after %g s (the database is slow or "
                        "locked): the request ends, its row follows", self.call.request_id, RECORD_WAIT)
            write.add_done_callback(self._late_write)
        except asyncio.CancelledError:
            write.add_done_callback(self._late_write)
            raise
        except Exception:
            log.exception("could not record the usage row of request %s", self.call.request_id)

    def _late_write(self, write: asyncio.Future) -> None:
        if not write.cancelled() and write.exception() is not None:
            log.error("could not record the usage row of request %s", self.call.request_id,
                      exc_info=write.exception())

    async def _watch(self, worker: str | None, last_event: float, deadline: float) -> ApiError | None:
        """The watchdog's verdict after a quiet spell: an error to fail with, or None to wait on."""
        now = time.monotonic()
        if now > deadline:
            return ApiError(504, f"The request did not finish in {settings.LANTHORN_REQUEST_TIMEOUT:.0f} "
                            "seconds.", code="timeout")
        idle = now - last_event
        if idle < WATCH_INTERVAL:
            return None
        try:
            if await _redis_run_id() != self._run_id:
                return redis_lost()
            if worker is None:  # still queued: is any worker of its model left to take it?
                alive = await _serving(model=self.call.model_name)
            else:
                alive = await _worker_alive(worker=worker)
        except Exception:  # Redis is down: the deadlines still hold
            log.warning("the watchdog could not reach Redis", exc_info=True)
            alive = True
        if not alive:
            if worker is None:
                return ApiError(503, f"No worker serves the model '{self.call.model_name}' any more.",
                                code="model_unavailable",
                                headers={"Retry-After": str(settings.LANTHORN_HEARTBEAT_TTL)})
            return ApiError(503, "The worker serving this request stopped.", code="worker_lost")
        if idle > settings.LANTHORN_WORKER_TIMEOUT:
            return ApiError(503, f"No answer from a worker in {idle:.0f} seconds.", code="timeout")
        return None

    def _close(self) -> None:
        if self._channel is None:
            return
        if self._receiver is None:  # the pub/sub layer unsubscribes a channel when its receive is cancelled
            self._receiver = asyncio.ensure_future(self._layer.receive(self._channel))
        self._receiver.cancel()
        self._receiver = self._channel = None
