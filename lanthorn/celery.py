"""The Celery app. Inference tasks go to the queue of the model they ask for; background jobs
(pulls, checks) to the `jobs` queue, which a worker process of its own consumes (`lanthorn worker
--jobs`), so that long pulls never take the threads that serve models."""

import logging
import os
import threading

from celery import Celery, bootsteps
from celery.worker.control import control_command

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lanthorn.settings")

app = Celery("lanthorn", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")


def _task_packages() -> list[str]:
    """The apps whose tasks a worker imports (when it starts): a model worker inference's alone, as
    registry's are routed to the jobs queue, which keeps the pull clients (httpx and the
    command-line libraries it loads, 7 MB) out of each model worker; any other, every app's."""
    from django.apps import apps
    from django.conf import settings

    if settings.LANTHORN_MODEL_WORKER:
        return ["inference"]
    return [config.name for config in apps.get_app_configs()]


app.autodiscover_tasks(_task_packages)

log = logging.getLogger(__name__)


JOBS_QUEUE = "jobs"


def route_by_model(name, args, kwargs, options, task=None, **kw):
    if name in ("inference.generate", "inference.embed"):
        return {"queue": f"model.{kwargs['model']}"}
    if name.startswith("registry."):
        return {"queue": JOBS_QUEUE}
    return None


app.conf.task_routes = (route_by_model,)


def is_jobs_worker(celery_app) -> bool:
    """Whether this worker process consumes the jobs queue alone (`lanthorn worker --jobs`)."""
    return set(celery_app.amqp.queues.consume_from or ()) == {JOBS_QUEUE}


@control_command(args=[("model", str)], signature="<model>")
def serve_model(state, model, **_):
    """A model was added: a worker for every model takes its queue; one started with --models
    only if the model is one of them; the jobs worker never."""
    from django.conf import settings

    if is_jobs_worker(state.consumer.app):
        return {"ok": f"not serving {model}"}
    served = settings.LANTHORN_WORKER_MODELS
    if served and model not in served:
        return {"ok": f"not serving {model}"}
    state.consumer.call_soon(state.consumer.add_task_queue, f"model.{model}", None, "direct", None)
    return {"ok": f"serving {model}"}


class Heartbeat(bootsteps.StartStopStep):
    """Marks the worker alive in Redis every few seconds, with the models it serves and what it
    is doing (the dashboard shows it), so the server can tell a dead worker from a busy one and
    route a model's requests only where someone takes them; and, in an inference worker, loads
    the active models before the first request. A worker for every model says so at once; one
    started with --models announces each of its models once it is loaded; a jobs worker serves
    no model."""

    requires = {"celery.worker.components:Pool"}

    def start(self, worker):
        from django.conf import settings

        from core.workers import INFERENCE, JOBS, beat, worker_name

        self.stopped = threading.Event()
        self.name = worker_name()
        interval = max(1.0, settings.LANTHORN_HEARTBEAT_TTL / 3)
        kind = JOBS if is_jobs_worker(worker.app) else INFERENCE
        if kind == JOBS:
            from registry.jobs import status

            self.models = []  # serves no model (None would mean every model)
        else:
            from inference.engine import status

            self.models = [] if settings.LANTHORN_WORKER_MODELS else None
        details = {"kind": kind, "hostname": worker.hostname, "slots": worker.concurrency}

        def run():
            while not self.stopped.is_set():
                try:
                    beat(worker=self.name, models=self.models, **details, **status())
                except Exception:
                    log.warning("heartbeat failed", exc_info=True)
                self.stopped.wait(interval)

        threading.Thread(target=run, name="heartbeat", daemon=True).start()
        if kind == INFERENCE:
            from inference.worker import preload_models

            loaded = preload_models()
            if self.models is not None:
                self.models.extend(loaded)
                beat(worker=self.name, models=self.models, **details, **status())

    def stop(self, worker):
        from prometheus_client import multiprocess

        from core.workers import forget

        self.stopped.set()
        forget(worker=self.name, models=self.models)
        multiprocess.mark_process_dead(os.getpid())  # its live gauges (batch occupancy) stop counting


app.steps["worker"].add(Heartbeat)
