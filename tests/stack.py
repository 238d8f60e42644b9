"""The real stack, started once per test session for the tests that ask for `stack`:
a Redis (REDIS_URL, else a private redis-server), a Celery worker process with the
default model loaded, the jobs worker (pulls, checks), and the ASGI server (uvicorn), all on the test database.
"""

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import connection

from lanthorn import processes, redis_server


def _database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"


@dataclass
class Stack:
    url: str
    redis_url: str
    env: dict
    worker: subprocess.Popen | None = None
    jobs_worker: subprocess.Popen | None = None  # pulls and checks
    server: subprocess.Popen | None = None

    def start_worker(self, *, jobs: bool = False) -> None:
        """Starts a worker (the inference worker, or the jobs worker) and waits for its own
        heartbeat (a killed one's lingers a few seconds)."""
        from core.workers import worker_alive

        proc = processes.start_worker(env=self.env, loglevel="WARNING", jobs=jobs)
        if jobs:
            self.jobs_worker = proc
        else:
            self.worker = proc
        name = f"{socket.gethostname()}:{proc.pid}"  # `lanthorn worker` execs Celery in place
        deadline = time.monotonic() + 60
        while not worker_alive(worker=name):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the Celery worker did not start")
            time.sleep(0.1)

    def kill_worker(self, *, jobs: bool = False) -> None:
        processes.kill(self.jobs_worker if jobs else self.worker)

    def stop(self) -> None:
        processes.stop([p for p in (self.worker, self.jobs_worker, self.server) if p])


def app_broker_url() -> str:
    from lanthorn.celery import app

    return app.conf.broker_url


@pytest.fixture(scope="session")
def stack(django_db_setup, django_db_blocker):
    procs = []
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        proc, redis_url = redis_server.start_private(Path(settings.LANTHORN_HOME) / "test-redis")
        procs.append(proc)
    # This process talks to the same Redis: heartbeats, and what it sends the worker (Celery).
    # Put back at the end of the session.
    saved = settings.REDIS_URL, app_broker_url()
    settings.REDIS_URL = redis_url
    from core.redis import redis_client
    from lanthorn.celery import app

    redis_client.cache_clear()
    app.conf.broker_url = redis_url
    app._after_fork()  # Celery's own reset of connections made to the old broker URL
    processes.clear_metrics(settings.PROMETHEUS_MULTIPROC_DIR)  # the counts of this run only
    with django_db_blocker.unblock():
        from registry.services import install_default_model

        install_default_model()
        env = {**os.environ, "DATABASE_URL": _database_url(), "REDIS_URL": redis_url,
               "LANTHORN_HOME": str(settings.LANTHORN_HOME), "LANTHORN_HEARTBEAT_TTL": "3",
               # Pulls give up on a broken server within seconds, not minutes.
               "LANTHORN_PULL_RETRIES": "3", "LANTHORN_PULL_BACKOFF": "0.2", "LANTHORN_PULL_STALL_TIMEOUT": "3",
               "PYTHONUNBUFFERED": "1", "LANTHORN_BODY_TIMEOUT": "3"}
        port = redis_server.free_port()
        stack = Stack(url=f"http://127.0.0.1:{port}", redis_url=redis_url, env=env)
        try:
            stack.start_worker()
            stack.start_worker(jobs=True)
            stack.server = processes.start_server(host="127.0.0.1", port=port, env=env)
            processes.wait_healthy(stack.url, [stack.worker, stack.jobs_worker, stack.server], timeout=60)
            # The worker has loaded the model; leave the tables empty, as every other test finds them
            # (tests that need the model's rows ask for `default_model`).
            from registry.models import Model, Pull

            Pull.objects.all().delete()
            Model.objects.all().delete()
            yield stack
        finally:
            stack.stop()
            processes.stop(procs)
            settings.REDIS_URL, app.conf.broker_url = saved
            redis_client.cache_clear()
            app._after_fork()


@pytest.fixture
def default_model(stack, transactional_db):
    """The default model's rows (each transactional test starts from empty tables), with the
    response cache off: the stack's Redis outlives each test, and most tests are about the worker
    (the response cache's own tests turn it on)."""
    from registry.models import Model
    from registry.services import install_default_model

    install_default_model()
    Model.objects.filter(name="gemma3-270m").update(cache=False)
    return Model.objects.get(name="gemma3-270m")


@pytest.fixture
def api(stack, default_model, member_key):
    """An httpx client for the API, authenticated as the member."""
    with httpx.Client(base_url=stack.url, timeout=120,
                      headers={"Authorization": f"Bearer {member_key.raw}"}) as client:
        yield client
