"""Inference operations on the web side: validate and queue a request, cancel it, record its usage row.

They are synchronous (they touch the database); `inference.session` drives them for every door.
The worker side is in `inference.worker`.
"""

import time
import uuid
from dataclasses import dataclass, field

from console import services as console_services
from console.models import ApiKey
from core.errors import ApiError
from core.validation import first_error
from inference import answer_cache
from inference.serializers import ChatCompletionSerializer, CompletionSerializer
from registry.models import Model

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
    cached: dict | None = None  # a cache hit: the stored answer, and no worker involved
    cache_key: str | None = None  # a miss that may be stored: where its answer goes, for how long
    cache_ttl: int = 0


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
    options = params.get("stream_options") or {}
    prepared = Prepared(stream=params["stream"], include_usage=options.get("include_usage", False))
    if model.cache:
        prepared.cache_key = answer_cache.cache_key(digest=version.digest, kind=kind, job=job)
        prepared.cache_ttl = model.cache_ttl
        if prepared.cache_key and (answer := answer_cache.lookup(prepared.cache_key)) is not None:
            prepared.cached = answer
            return prepared
    generate.delay_on_commit(request_id=call.request_id, reply_channel=reply_channel,
                             version_id=version.id, load=model.load_config(), model=model.name, job=job,
                             enqueued_at=time.time())
    return prepared


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


