"""Inference on the worker side: load the model once, generate answers, publish their text.

`run_generation` runs in a Celery task thread of a worker process; the text goes to the
request's reply channel through `inference.publisher`.
"""

import logging
import time

from django.conf import settings

from core.errors import ApiError
from core.workers import worker_name
from inference.engine import Job, get_engine
from inference.publisher import Stream
from inference.cancel import cancel_check
from registry.models import Model, ModelVersion

log = logging.getLogger(__name__)


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
        work = Job(**job, on_token=stream.token, is_cancelled=cancel_check(request_id))
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
    served = Model.objects.filter(active_version__isnull=False, max_workers__gt=settings.LANTHORN_WORKER_INDEX)
    for model in served.select_related("active_version"):
        try:
            load_engine(version=model.active_version, load=model.load_config())
        except ApiError as exc:
            log.error("could not load %s: %s", model.name, exc.message)
