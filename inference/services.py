"""Inference operations: from an API call to a worker's answer, and the usage row it leaves.

The server side (`start_request`, `cancel_request`, `finish_request`) runs in the
ASGI process; `run_generation` runs in a worker, where the model is loaded.
"""

import json
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from functools import cache

import redis
from django.conf import settings

from console import services as console_services
from console.models import ApiKey
from inference.engine import Job, get_engine
from inference.errors import ApiError, invalid_key
from inference.publisher import Stream
from inference.serializers import ChatCompletionSerializer, CompletionSerializer, first_error
from registry.models import Model, ModelVersion

log = logging.getLogger(__name__)

CANCEL_KEY = "lanthorn:cancel:{}"
WORKER_KEY = "lanthorn:worker:{}"


@cache
def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


@dataclass
class ApiCall:
    """One API request as its usage row will record it, filled in as the request goes."""

    endpoint: str
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started: float = field(default_factory=time.monotonic)
    created: int = field(default_factory=lambda: int(time.time()))
    api_key: ApiKey | None = None
    model_name: str = ""
    version_digest: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft: float | None = None
    status_code: int = 200
    outcome: str = "ok"
    error_code: str = ""
    finish_reason: str = ""

    def fail(self, error: ApiError) -> None:
        self.status_code, self.outcome, self.error_code = error.status, "error", error.code or error.type


@dataclass
class Prepared:
    stream: bool
    include_usage: bool


def start_request(*, call: ApiCall, kind: str, authorization: str, body: bytes, reply_channel: str) -> Prepared:
    """Authenticate, validate and enqueue one completion request; raises ApiError."""
    try:
        call.api_key = console_services.authenticate_key(raw=console_services.bearer_token(authorization))
    except console_services.InvalidKey as exc:
        raise invalid_key(str(exc)) from exc
    try:
        data = json.loads(body)
    except ValueError:
        raise ApiError(400, "We could not parse the JSON body of your request.") from None
    return enqueue_request(call=call, kind=kind, data=data, reply_channel=reply_channel)


def enqueue_request(*, call: ApiCall, kind: str, data, reply_channel: str) -> Prepared:
    """Validate a request body and queue it for a worker of its model; raises ApiError."""
    from inference.tasks import generate

    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    serializer = (ChatCompletionSerializer if kind == "chat" else CompletionSerializer)(data=data)
    if not serializer.is_valid():
        param, message = first_error(serializer.errors)
        raise ApiError(400, message, param=param, code="invalid_value")
    params = serializer.validated_data
    call.model_name = params["model"]
    model = Model.objects.select_related("active_version").filter(name=params["model"]).first()
    if model is None or model.active_version is None:
        raise ApiError(404, f"The model '{params['model']}' does not exist.", code="model_not_found",
                       param="model")
    version = model.active_version
    call.version_digest = version.digest

    def pick(name):
        value = params.get(name)
        return getattr(model, name) if value is None else value

    job = {
        "max_tokens": params.get("max_completion_tokens") or pick("max_tokens"),
        "temperature": pick("temperature"),
        "top_p": pick("top_p"),
        "stop": params["stop"],
        "seed": params.get("seed"),
    }
    if kind == "chat":
        job["messages"] = [dict(m) for m in params["messages"]]
    else:
        job["prompt"] = params["prompt"]
    generate.delay_on_commit(request_id=call.request_id, reply_channel=reply_channel,
                             version_id=version.id, load=model.load_config(), model=model.name, job=job,
                             enqueued_at=time.time())
    options = params.get("stream_options") or {}
    return Prepared(stream=params["stream"], include_usage=options.get("include_usage", False))


async def stream_chat(*, model: str, messages: list[dict], user, endpoint: str = "cli.shell"):
    """Yields the model's answer piece by piece, through the same queue, worker and channel layer
    as the API (for `lanthorn shell`); leaves one usage row. Raises ApiError."""
    import asyncio

    from channels.db import database_sync_to_async
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    channel = await layer.new_channel(prefix="shell.")
    call = ApiCall(endpoint=endpoint)
    enqueue = database_sync_to_async(enqueue_request)
    await enqueue(call=call, kind="chat", reply_channel=channel,
                  data={"model": model, "messages": messages, "stream": True})
    receiver = asyncio.ensure_future(layer.receive(channel))
    worker, last_event = None, time.monotonic()
    try:
        while True:
            done, _ = await asyncio.wait({receiver}, timeout=2.0)
            if not done:
                waited = time.monotonic() - last_event
                if waited > settings.LANTHORN_WORKER_TIMEOUT:
                    raise ApiError(503, "No word from the worker: timed out.", code="timeout")
                if not worker_alive(worker=worker):
                    raise ApiError(503, "No worker is running for this model (start one with `lanthorn run`)."
                                   if worker is None else "The worker died while answering.",
                                   code="no_worker" if worker is None else "worker_lost")
                continue
            message, last_event = receiver.result(), time.monotonic()
            receiver = asyncio.ensure_future(layer.receive(channel))
            kind = message["type"]
            if kind == "inference.started":
                worker = message["worker"]
            elif kind == "inference.token":
                if call.ttft is None:
                    call.ttft = time.monotonic() - call.started
                call.completion_tokens += len(message["text"])
                yield "".join(message["text"])
            elif kind == "inference.done":
                call.finish_reason = message["finish_reason"]
                call.prompt_tokens, call.completion_tokens = message["prompt_tokens"], message["completion_tokens"]
                return
            elif kind == "inference.error":
                error = ApiError.from_dict(message["error"])
                call.fail(error)
                raise error
    except BaseException as exc:
        if not isinstance(exc, ApiError):
            cancel_request(request_id=call.request_id)
            call.outcome = call.finish_reason = "cancelled"
        raise
    finally:
        receiver.cancel()
        await database_sync_to_async(finish_request)(call=call, user=user)


def cancel_request(*, request_id: str) -> None:
    """Tells the worker to stop generating for a client that went away."""
    redis_client().set(CANCEL_KEY.format(request_id), 1, ex=600)


def finish_request(*, call: ApiCall, user=None) -> None:
    """Writes the request's one usage row (`user`: who asked, for calls without an API key)."""
    key = call.api_key
    console_services.record_usage(
        request_id=call.request_id,
        user=key.user if key else user,
        api_key=key,
        endpoint=call.endpoint,
        model_name=call.model_name,
        version_digest=call.version_digest,
        prompt_tokens=call.prompt_tokens,
        completion_tokens=call.completion_tokens,
        ttft_ms=None if call.ttft is None else round(call.ttft * 1000, 2),
        latency_ms=round((time.monotonic() - call.started) * 1000, 2),
        status_code=call.status_code,
        outcome=call.outcome,
        error_code=call.error_code,
        finish_reason=call.finish_reason,
    )


# Worker side.

def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def beat(*, worker: str) -> None:
    """Marks this worker alive for the next LANTHORN_HEARTBEAT_TTL seconds."""
    redis_client().set(WORKER_KEY.format(worker), int(time.time()), ex=settings.LANTHORN_HEARTBEAT_TTL)


def worker_alive(*, worker: str | None) -> bool:
    """Whether this worker (any worker, for None) sent a heartbeat lately."""
    if worker is None:
        return bool(live_workers())
    return bool(redis_client().exists(WORKER_KEY.format(worker)))


def live_workers() -> list[str]:
    prefix = WORKER_KEY.format("")
    return [k.decode()[len(prefix):] for k in redis_client().scan_iter(match=prefix + "*")]


def _cancel_check(request_id: str, every: float = 0.2):
    key, last = CANCEL_KEY.format(request_id), [0.0]

    def is_cancelled() -> bool:
        now = time.monotonic()
        if now - last[0] < every:
            return False
        last[0] = now
        return bool(redis_client().exists(key))

    return is_cancelled


def load_engine(*, version: ModelVersion, load: dict):
    return get_engine(model=version.model.name, digest=version.digest, path=version.path, load=load,
                      architecture=version.architecture, chat_template=version.chat_template)


_versions: dict[int, ModelVersion] = {}


def _version(version_id: int) -> ModelVersion | None:
    """Versions never change once written, so a worker reads each from the database once."""
    if version_id not in _versions:
        version = ModelVersion.objects.select_related("model").filter(pk=version_id).first()
        if version is None:
            return None
        _versions[version_id] = version
    return _versions[version_id]


def run_generation(*, request_id: str, reply_channel: str, version_id: int, load: dict, job: dict,
                   enqueued_at: float) -> None:
    """Generates one answer with the loaded model, sending each piece of text to `reply_channel`."""
    if time.time() - enqueued_at > settings.LANTHORN_WORKER_TIMEOUT:
        return  # its client gave up long ago (a task redelivered after a worker died, say)
    stream = Stream(reply_channel)
    stream.event("inference.started", worker=worker_name())
    try:
        version = _version(version_id)
        if version is None:
            raise ApiError(404, "That model version was removed.", code="model_not_found")
        work = Job(**job, on_token=stream.token, is_cancelled=_cancel_check(request_id))
        while load_engine(version=version, load=load).submit(work) is None:
            pass  # that engine was retired just now (its model moved on); the next call loads it anew
        work.done.wait()
        if work.error:
            raise work.error
        stream.event("inference.done", finish_reason=work.finish_reason,
                     prompt_tokens=work.prompt_tokens, completion_tokens=work.completion_tokens)
    except ApiError as exc:
        stream.event("inference.error", error=exc.as_dict())
    except Exception as exc:
        stream.event("inference.error",
                     error=ApiError(500, f"the worker failed: {exc}", code="server_error").as_dict())
        raise


def preload_models() -> None:
    """Loads every active model that this worker serves, so no request waits for a load."""
    for model in Model.objects.select_related("active_version").filter(active_version__isnull=False):
        try:
            load_engine(version=model.active_version, load=model.load_config())
        except ApiError as exc:
            log.error("could not load %s: %s", model.name, exc.message)
