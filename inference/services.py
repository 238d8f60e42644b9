"""Inference operations on the web side: validate and queue a request, cancel it, record its usage row.

They are synchronous (they touch the database); `inference.session` drives them for every door.
The worker side is in `inference.worker`.
"""

import atexit
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, close_old_connections, connection, transaction
from django.utils import timezone
from redis.exceptions import RedisError

from console import services as console_services
from console.models import ApiKey
from core import metrics
from core.actions import announce
from core.errors import ApiError
from core.workers import INFERENCE, live_workers, serving
from core.validation import first_error
from inference import answer_cache
from inference.serializers import ChatCompletionSerializer, CompletionSerializer, EmbeddingSerializer
from registry.selectors import model_by_name

SERIALIZERS = {"chat": ChatCompletionSerializer, "completion": CompletionSerializer,
               "embedding": EmbeddingSerializer}

log = logging.getLogger(__name__)


@dataclass
class ApiCall:
    """One API request as its usage row will record it, filled in as the request goes."""

    endpoint: str
    kind: str = "chat"  # or completion
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
    source_ip: str = ""
    user_agent: str = ""
    # The prompt and the answer's pieces, kept only while the audit trail records content.
    prompt: object = None
    answer: list[str] | None = None

    def fail(self, error: ApiError) -> None:
        self.status_code, self.outcome, self.error_code = error.status, "error", error.code or error.type


@dataclass
class Prepared:
    """A validated request, ready to queue: what the door needs (stream, include_usage) and what
    the worker and the limits need."""

    stream: bool
    include_usage: bool
    model: str
    version_id: int
    load: dict
    job: dict  # for the worker: sampling and messages or prompt; for embeddings, the inputs
    kind: str = "chat"  # chat, completion or embedding
    encoding_format: str = "float"  # embeddings: float or base64
    cached: dict | None = None  # a cache hit: the stored answer, and no worker involved
    cache_key: str | None = None  # a miss that may be stored: where its answer goes, for how long
    cache_ttl: int = 0

    @property
    def max_tokens(self) -> int:
        return self.job.get("max_tokens", 0)

    def estimated_tokens(self) -> int:
        """An upper bound of the tokens the request can spend: max_tokens plus the prompt's UTF-8
        bytes (a byte-fallback tokenizer makes at most one token of a byte) plus the chat
        template's few tokens a message."""
        if "inputs" in self.job:
            texts = self.job["inputs"]
        elif "messages" in self.job:
            texts = [m["content"] for m in self.job["messages"]]
        else:
            texts = [self.job["prompt"]]
        return self.max_tokens + sum(len(t.encode()) + PER_MESSAGE_TOKENS for t in texts) + PER_MESSAGE_TOKENS


PER_MESSAGE_TOKENS = 16


def prepare_request(*, call: ApiCall, kind: str, data) -> Prepared:
    """Validates a request body and finds its model's active version; raises ApiError."""
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    serializer = SERIALIZERS[kind](data=data)
    if not serializer.is_valid():
        param, message = first_error(serializer.errors)
        raise ApiError(400, message, param=param, code="invalid_value")
    params = serializer.validated_data
    call.model_name = params["model"]
    model = model_by_name(params["model"])
    if model is None or model.active_version is None:
        raise ApiError(404, f"The model '{params['model']}' does not exist.", code="model_not_found",
                       param="model")
    version = model.active_version
    call.version_digest = version.digest
    check_served(model=model.name)
    if kind == "embedding":
        return Prepared(stream=False, include_usage=False, model=model.name, version_id=version.id,
                        load=model.load_config(), job={"inputs": params["input"]}, kind=kind,
                        encoding_format=params["encoding_format"])
    if params.get("num_ctx") and params["num_ctx"] > model.n_ctx:
        raise ApiError(400, f"num_ctx: '{model.name}' is loaded with a context of {model.n_ctx} tokens; "
                       "an admin can raise its n_ctx.", param="num_ctx", code="invalid_value")

    def pick(name):
        value = params.get(name)
        return getattr(model, name) if value is None else value

    job = {
        # Never more than the model's context holds, however much is asked.
        "max_tokens": min(params.get("max_completion_tokens") or pick("max_tokens"), model.n_ctx),
        "temperature": pick("temperature"),
        "top_p": pick("top_p"),
        "top_k": pick("top_k"),
        "stop": params["stop"],
        "seed": params.get("seed"),
    }
    if kind == "chat":
        job["messages"] = [dict(m) for m in params["messages"]]
    else:
        job["prompt"] = params["prompt"]
    if settings.LANTHORN_AUDIT_CONTENT:
        call.prompt, call.answer = job.get("messages", job.get("prompt")), []
    options = params.get("stream_options") or {}
    prepared = Prepared(stream=params["stream"], include_usage=options.get("include_usage", False),
                        model=model.name, version_id=version.id, load=model.load_config(), job=job, kind=kind)
    if model.cache:
        prepared.cache_key = answer_cache.cache_key(digest=version.digest, kind=kind, job=job)
        prepared.cache_ttl = model.cache_ttl
        if prepared.cache_key:
            prepared.cached = answer_cache.lookup(prepared.cache_key)
    return prepared


def enqueue_request(*, call: ApiCall, prepared: Prepared, reply_channel: str) -> None:
    """Queues a prepared request for a worker of its model. The message's `kwargsrepr` (what
    Celery shows of a task in logs and monitors) names the request only: prompts stay out of
    them, and Celery's own repr of the arguments cost a millisecond on the way to the first token."""
    from inference.tasks import embed, generate

    kwargs = {"request_id": call.request_id, "reply_channel": reply_channel, "version_id": prepared.version_id,
              "load": prepared.load, "model": prepared.model, "enqueued_at": time.time()}
    if prepared.kind == "embedding":
        task, kwargs["inputs"] = embed, prepared.job["inputs"]
    else:
        task, kwargs["job"] = generate, prepared.job
    task.apply_async_on_commit(kwargs=kwargs, argsrepr="()", kwargsrepr=f"{{'request_id': '{call.request_id}'}}")


def warm_queue() -> None:
    """Makes ready what a process's first enqueue_request would set up: the task module, Celery's
    producer pool and a connection to the broker (measured: about 50 ms of a first request's TTFT)."""
    from inference.tasks import generate

    with generate.app.producer_or_acquire() as producer:
        producer.connection.ensure_connection(max_retries=1)


def check_served(*, model: str) -> None:
    """Raises a 503 (with Retry-After) unless a live worker serves `model`: one Redis read."""
    retry = {"Retry-After": str(settings.LANTHORN_HEARTBEAT_TTL)}
    try:
        if serving(model=model):
            return
        anyone = bool(live_workers(kind=INFERENCE))
    except RedisError:
        raise ApiError(503, "The request queue is not reachable right now.", code="queue_unavailable",
                       headers=retry) from None
    if not anyone:
        raise ApiError(503, "No inference worker is running.", code="no_worker", headers=retry)
    raise ApiError(503, f"No worker serves the model '{model}' right now.", code="model_unavailable",
                   param="model", headers=retry)


def finish_request(*, call: ApiCall, user=None) -> None:
    """Writes the request's one usage row and its audit event (`request.chat`, `request.completion`),
    together (`user`: who asked, for calls without an API key), and counts it in the metrics.
    Never loses the row quietly: one the database does not take now (locked, restarting, its
    connection cut) is written again in the background (`retrier`); one it refuses for good is
    logged at ERROR, whole (`usage_lost`)."""
    _count(call)
    log.info("%s %s: %s %s (%d+%d tokens)", call.endpoint, call.model_name or "-", call.status_code,
             call.error_code or call.finish_reason or call.outcome, call.prompt_tokens, call.completion_tokens)
    key = call.api_key
    usage = PendingUsage(
        row={
            "request_id": call.request_id,
            "endpoint": call.endpoint,
            "model_name": call.model_name,
            "version_digest": call.version_digest,
            "prompt_tokens": call.prompt_tokens,
            "completion_tokens": call.completion_tokens,
            "ttft_ms": None if call.ttft is None else round(call.ttft * 1000, 2),
            "latency_ms": round((time.monotonic() - call.started) * 1000, 2),
            "status_code": call.status_code,
            "outcome": call.outcome,
            "error_code": call.error_code,
            "finish_reason": call.finish_reason,
        },
        created_at=timezone.now(), user=key.user if key else user, api_key=key, kind=call.kind,
        source_ip=call.source_ip, user_agent=call.user_agent,
        content=None if call.answer is None else {"prompt": call.prompt, "answer": "".join(call.answer)})
    try:
        write_usage(usage)
    except TRANSIENT as exc:
        log.warning("the database did not take the usage row of request %s (%s): retrying in the background",
                    call.request_id, oneline(exc))
        retrier.add(usage)
    except DatabaseError as exc:
        usage_lost(usage, f"the database refused it: {oneline(exc)}")
    except BaseException as exc:
        usage_lost(usage, oneline(exc))
        raise


# The database errors that another try may not meet: a lock held past the timeout, a database
# restarting, a connection cut. Others (a constraint, a bad value) would fail again.
TRANSIENT = (OperationalError, InterfaceError)


@dataclass
class PendingUsage:
    """A usage row and its audit event, as written (again, until `deadline`)."""

    row: dict
    created_at: datetime  # when the request ended, also when the row is written later
    user: object
    api_key: ApiKey | None
    kind: str
    source_ip: str
    user_agent: str
    content: dict | None
    deadline: float = 0.0
    tries: int = 1
    error: str = ""

    def record(self) -> dict:
        """Everything the row and its audit event need, as JSON (the prompt and answer left out:
        the audit trail keeps them only encrypted)."""
        return {**self.row, "created_at": self.created_at.isoformat(), "kind": self.kind,
                "user_id": getattr(self.user, "pk", None), "username": getattr(self.user, "username", None),
                "api_key_id": self.api_key.pk if self.api_key else None, "source_ip": self.source_ip,
                "user_agent": self.user_agent}


def write_usage(usage: PendingUsage, *, again: bool = False) -> None:
    """Writes the usage row and its audit event in one transaction. `again`: a try after a failure,
    which writes nothing if the failed one had committed after all (a connection cut at COMMIT)."""
    from console.models import UsageRecord

    with transaction.atomic():
        if again and UsageRecord.objects.filter(request_id=usage.row["request_id"]).exists():
            return
        console_services.record_usage(user=usage.user, api_key=usage.api_key, created_at=usage.created_at,
                                      **usage.row)
        announce(f"request.{usage.kind}", actor=usage.user, api_key=usage.api_key, target=usage.row["model_name"],
                 outcome=usage.row["outcome"],
                 details={k: v for k, v in usage.row.items() if k not in ("model_name", "outcome")},
                 source_ip=usage.source_ip, user_agent=usage.user_agent, content=usage.content)


def oneline(exc: BaseException) -> str:
    """An error for a log line: PostgreSQL's messages span several."""
    return " ".join(str(exc).split()) or type(exc).__name__


def usage_lost(usage: PendingUsage, reason: str) -> None:
    """The last word on a row the database never took: logged at ERROR with all its fields (JSON, at
    the end of the line), to be put back by hand (docs/operations.md)."""
    log.error("lost the usage row of request %s (%s); the row: %s", usage.row["request_id"], reason,
              json.dumps(usage.record(), sort_keys=True))


class UsageRetrier:
    """The usage rows waiting for the database, and the thread that writes them: every pending row,
    oldest first, the first failure ending the round; rounds back off from RETRY_FIRST to RETRY_MAX
    seconds. A row still unwritten after LANTHORN_USAGE_RETRY_WINDOW seconds, one that finds
    MAX_PENDING rows waiting, and those left when the process exits are logged by `usage_lost`."""

    RETRY_FIRST, RETRY_MAX = 0.5, 10.0
    MAX_PENDING = 10_000

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: list[PendingUsage] = []
        self.thread: threading.Thread | None = None
        atexit.register(self.abandon)

    def add(self, usage: PendingUsage) -> None:
        usage.deadline = time.monotonic() + settings.LANTHORN_USAGE_RETRY_WINDOW
        with self.lock:
            full = len(self.pending) >= self.MAX_PENDING
            if not full:
                self.pending.append(usage)
                if self.thread is None:
                    self.thread = threading.Thread(target=self._run, name="usage-retrier", daemon=True)
                    self.thread.start()
        if full:
            usage_lost(usage, f"{self.MAX_PENDING} usage rows already wait for the database")

    def _run(self) -> None:
        delay = self.RETRY_FIRST
        try:
            while True:
                time.sleep(delay)
                with self.lock:
                    if not self.pending:
                        self.thread = None
                        return
                    batch = list(self.pending)
                close_old_connections()  # a connection the database cut is opened anew
                failed = False
                for usage in batch:
                    if time.monotonic() > usage.deadline:
                        self._done(usage)
                        usage_lost(usage, f"the database did not take it in {settings.LANTHORN_USAGE_RETRY_WINDOW:g} "
                                          f"s, {usage.tries} tries; the last: {usage.error}")
                    elif not failed:
                        failed = self._try(usage)
                delay = min(delay * 2, self.RETRY_MAX) if failed else self.RETRY_FIRST
        finally:
            connection.close()

    def _try(self, usage: PendingUsage) -> bool:
        """Writes one row; True if the database is still unavailable."""
        usage.tries += 1
        try:
            write_usage(usage, again=True)
        except TRANSIENT as exc:
            usage.error = oneline(exc)
            return True
        except Exception as exc:
            self._done(usage)
            usage_lost(usage, oneline(exc))
        else:
            self._done(usage)
            log.warning("wrote the usage row of request %s at try %d", usage.row["request_id"], usage.tries)
        return False

    def _done(self, usage: PendingUsage) -> None:
        with self.lock:
            self.pending.remove(usage)

    def abandon(self) -> None:
        """At exit: the rows still waiting are logged, not dropped."""
        with self.lock:
            left, self.pending = self.pending, []
        for usage in left:
            usage_lost(usage, f"the process ended before the database took it ({usage.tries} tries)")


retrier = UsageRetrier()


def _count(call: ApiCall) -> None:
    # Only a model that exists names a label: what a client types must not grow the label set.
    model = call.model_name if call.version_digest else ""
    metrics.REQUESTS.labels(call.endpoint, model, str(call.status_code)).inc()
    metrics.LATENCY.labels(call.endpoint, model).observe(time.monotonic() - call.started)
    if call.prompt_tokens:
        metrics.TOKENS.labels(model, "in").inc(call.prompt_tokens)
    if call.completion_tokens:
        metrics.TOKENS.labels(model, "out").inc(call.completion_tokens)
    if call.ttft is not None:
        metrics.TTFT.labels(model).observe(call.ttft)
