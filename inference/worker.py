"""Inference on the worker side: load the model once, generate answers, publish their text.

`run_generation` runs in a Celery task thread of a worker process; the text goes to the
request's reply channel through `inference.publisher`.
"""

import logging
import time

from django.conf import settings

from core.errors import ApiError
from core.logs import bind
from core.workers import worker_name
from inference.engine import Job, get_engine
from inference.publisher import Stream
from inference.cancel import cancel_check
from registry.models import Model, ModelVersion

log = logging.getLogger(__name__)


def load_engine(*, version: ModelVersion, load: dict):
    """The loaded engine of `version`. A worker with a blob store of its own (another host) first
    pulls the file from LANTHORN_PEER."""
    if not version.path.is_file() and settings.LANTHORN_PEER:
        from registry.services import fetch_blob

        fetch_blob(version=version, peer=settings.LANTHORN_PEER)
    return get_engine(model=version.model.name, digest=version.digest, path=version.path, load=load,
                      architecture=version.architecture, chat_template=version.chat_template)


_versions: dict[int, ModelVersion] = {}


def get_version(version_id: int) -> ModelVersion:
    """Versions never change once written, so a worker reads each from the database once.
    ApiError if it was removed."""
    if version_id not in _versions:
        version = ModelVersion.objects.select_related("model").filter(pk=version_id).first()
        if version is None:
            raise ApiError(404, "That model version was removed.", code="model_not_found")
        _versions[version_id] = version
    return _versions[version_id]


def run_generation(*, request_id: str, reply_channel: str, version_id: int, load: dict, job: dict,
                   enqueued_at: float) -> None:
    """Generates one answer with the loaded model, sending each piece of text to `reply_channel`."""
    bind(request_id)
    if time.time() - enqueued_at > settings.LANTHORN_WORKER_TIMEOUT:
        log.info("dropped: queued %.0f s ago, its client gave up", time.time() - enqueued_at)
        return  # its client gave up long ago (a task redelivered after a worker died, say)
    stream = Stream(reply_channel)
    stream.event("inference.started", worker=worker_name())
    with stream.reporting_errors():
        version = get_version(version_id)
        cancelled = cancel_check(request_id)
        work = Job(**job, on_token=stream.token, is_cancelled=lambda: stream.gone or cancelled())
        while load_engine(version=version, load=load).submit(work) is None:
            pass  # that engine was retired just now (its model moved on); the next call loads it anew
        log.info("generating with %s", version.label)
        work.done.wait()
        if work.error:
            raise work.error
        log.info("%s after %d tokens", work.finish_reason, work.completion_tokens)
        stream.event("inference.done", finish_reason=work.finish_reason,
                     prompt_tokens=work.prompt_tokens, completion_tokens=work.completion_tokens)


def preload_models() -> list[str]:
    """Loads every active model that this worker serves (LANTHORN_WORKER_MODELS, else all, and only
    those whose `max_workers` this worker's index is below), so no request waits for a load;
    returns the names of those it loaded."""
    models = Model.objects.select_related("active_version").filter(
        active_version__isnull=False, max_workers__gt=settings.LANTHORN_WORKER_INDEX)
    if settings.LANTHORN_WORKER_MODELS:
        models = models.filter(name__in=settings.LANTHORN_WORKER_MODELS)
    loaded = []
    for model in models:
        try:
            load_engine(version=model.active_version, load=model.load_config())
            loaded.append(model.name)
        except ApiError as exc:
            log.error("could not load %s: %s", model.name, exc.message)
    return loaded
