"""The Celery app. Inference tasks go to the queue of the model they ask for."""

import logging
import os
import threading

from celery import Celery, bootsteps
from celery.worker.control import control_command

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lanthorn.settings")

app = Celery("lanthorn", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

log = logging.getLogger(__name__)


def route_by_model(name, args, kwargs, options, task=None, **kw):
    if name in ("inference.generate", "inference.embed"):
        return {"queue": f"model.{kwargs['model']}"}
    return None


app.conf.task_routes = (route_by_model,)


@control_command(args=[("model", str)], signature="<model>")
def serve_model(state, model, **_):
    """A model was added: a worker for every model takes its queue; one started with --models
    only if the model is one of them."""
    from django.conf import settings

    served = settings.LANTHORN_WORKER_MODELS
    if served and model not in served:
        return {"ok": f"not serving {model}"}
    state.consumer.call_soon(state.consumer.add_task_queue, f"model.{model}", None, "direct", None)
    return {"ok": f"serving {model}"}


class Heartbeat(bootsteps.StartStopStep):
    """Marks the worker alive in Redis every few seconds, with the models it serves, so the server
    can tell a dead worker from a busy one and route a model's requests only where someone takes
    them; and loads the active models before the first request. A worker for every model says so
    at once; one started with --models announces each of its models once it is loaded."""

    requires = {"celery.worker.components:Pool"}

    def start(self, worker):
        from django.conf import settings

        from core.workers import beat, worker_name
        from inference.worker import preload_models

        self.stopped = threading.Event()
        self.name = worker_name()
        self.models = [] if settings.LANTHORN_WORKER_MODELS else None
        interval = max(1.0, settings.LANTHORN_HEARTBEAT_TTL / 3)

        def run():
            while not self.stopped.is_set():
                try:
                    beat(worker=self.name, models=self.models, slots=worker.concurrency)
                except Exception:
                    log.warning("heartbeat failed", exc_info=True)
                self.stopped.wait(interval)

        threading.Thread(target=run, name="heartbeat", daemon=True).start()
        loaded = preload_models()
        if self.models is not None:
            self.models.extend(loaded)
            beat(worker=self.name, models=self.models, slots=worker.concurrency)

    def stop(self, worker):
        from prometheus_client import multiprocess

        from core.workers import forget

        self.stopped.set()
        forget(worker=self.name, models=self.models)
        multiprocess.mark_process_dead(os.getpid())  # its live gauges (batch occupancy) stop counting


app.steps["worker"].add(Heartbeat)
