"""What a worker process imports. A model worker leaves out DRF's views, renderers and serializers
(and what they pull in: requests, and psycopg on SQLite) and the registry's pull clients (httpx and
the command-line libraries it loads), which serve pages, validate requests and pull files that a
model worker never does: each worker would hold them on its own (about 26 MB)."""

import os
import subprocess
import sys
from pathlib import Path

from lanthorn.cli.server import worker_environment

ROOT = Path(__file__).resolve().parents[2]

# What `lanthorn worker` leads to before Celery's pool starts: Django, the Celery app and the
# tasks it discovers, Celery's Django fix-up, the engine; then what the process has imported.
WORKER = """
import sys
import django
django.setup()
from celery.fixups.django import DjangoWorkerFixup
from lanthorn.celery import app
app.loader.import_default_modules()
DjangoWorkerFixup(app).validate_models()
import inference.engine, inference.worker
print(sorted(m for m in ("rest_framework.views", "rest_framework.renderers", "rest_framework.serializers",
                         "requests", "drf_spectacular.extensions", "httpx", "registry.sources")
             if m in sys.modules), sorted(name for name in app.tasks if not name.startswith("celery.")))
"""


def worker_imports(*, jobs: bool) -> str:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "lanthorn.settings", **worker_environment(jobs=jobs)}
    result = subprocess.run([sys.executable, "-c", WORKER], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip().splitlines()[-1]


def test_a_model_worker_imports_no_drf_views_nor_pull_clients():
    assert worker_imports(jobs=False) == "[] ['inference.embed', 'inference.generate']"


def test_the_jobs_worker_has_the_registrys_tasks():
    imported, tasks = worker_imports(jobs=True).split("] [")
    assert "'registry.pull'" in tasks and "'registry.check'" in tasks and "'registry.sources'" in imported
