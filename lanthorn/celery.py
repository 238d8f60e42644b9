"""The Celery app. Inference tasks go to the queue of the model they ask for."""

import logging
import os
import threading

from celery import Celery, bootsteps

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


class Heartbeat(bootsteps.StartStopStep):
    """Marks the worker alive in Redis every few seconds, so the server can tell a dead worker
    from a busy one; and loads the active models before the first request."""

    requires = {"celery.worker.components:Pool"}

    def start(self, worker):
        from django.conf import settings

        from core.workers import beat, worker_name
        from inference.worker import preload_models

        self.stopped = threading.Event()
        name = worker_name()
        interval = max(1.0, settings.LANTHORN_HEARTBEAT_TTL / 3)

        def run():
            while not self.stopped.is_set():
                try:
                    beat(worker=name)
                except Exception:
                    log.warning("heartbeat failed", exc_info=True)
                self.stopped.wait(interval)

        threading.Thread(target=run, name="heartbeat", daemon=True).start()
        preload_models()

    def stop(self, worker):
        from core.workers import forget, worker_name

        self.stopped.set()
        forget(worker=worker_name())


app.steps["worker"].add(Heartbeat)
