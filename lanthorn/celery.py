"""The Celery app. Inference tasks go to the queue of the model they ask for; background jobs
(pulls, checks) to the `jobs` queue, which a worker process of its own consumes (`lanthorn worker
--jobs`), so that long pulls never take the threads that serve models."""

import logging
import os
import threading

from celery import Celery, bootsteps

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lanthorn.settings")

app = Celery("lanthorn", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

log = logging.getLogger(__name__)


JOBS_QUEUE = "jobs"


def route_by_model(name, args, kwargs, options, task=None, **kw):
    if name == "inference.generate":
        return {"queue": f"model.{kwargs['model']}"}
    if name.startswith("registry."):
        return {"queue": JOBS_QUEUE}
    return None


app.conf.task_routes = (route_by_model,)


class Heartbeat(bootsteps.StartStopStep):
    """Marks the worker alive in Redis every few seconds, with what it is doing (the dashboard
    shows it), so the server can tell a dead worker from a busy one; and, in an inference
    worker, loads the active models before the first request."""

    requires = {"celery.worker.components:Pool"}

    def start(self, worker):
        from django.conf import settings

        from core.workers import INFERENCE, JOBS, beat, worker_name

        self.stopped = threading.Event()
        name = worker_name()
        interval = max(1.0, settings.LANTHORN_HEARTBEAT_TTL / 3)
        kind = JOBS if set(worker.app.amqp.queues.consume_from) == {JOBS_QUEUE} else INFERENCE
        if kind == JOBS:
            from registry.jobs import status
        else:
            from inference.engine import status
        hostname = worker.hostname

        def run():
            while not self.stopped.is_set():
                try:
                    beat(worker=name, info={"kind": kind, "hostname": hostname, **status()})
                except Exception:
                    log.warning("heartbeat failed", exc_info=True)
                self.stopped.wait(interval)

        threading.Thread(target=run, name="heartbeat", daemon=True).start()
        if kind == INFERENCE:
            from inference.worker import preload_models

            preload_models()

    def stop(self, worker):
        from core.workers import forget, worker_name

        self.stopped.set()
        forget(worker=worker_name())


app.steps["worker"].add(Heartbeat)
