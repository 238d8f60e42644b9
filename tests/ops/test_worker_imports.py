"""What a model worker process imports: not DRF's views, renderers and serializers (nor what they
pull in: requests, and psycopg on SQLite), which serve pages and validate requests that a worker
never does; each worker would hold them on its own (about 19 MB)."""

import os
import subprocess
import sys
from pathlib import Path

from lanthorn.cli.server import WORKER_ENVIRONMENT

ROOT = Path(__file__).resolve().parents[2]

# What `lanthorn worker` leads to before Celery's pool starts: Django, the Celery app and every
# app's tasks, Celery's Django fix-up with the environment `lanthorn worker` gives it, the engine.
WORKER = """
import sys
import django
django.setup()
from celery.fixups.django import DjangoWorkerFixup
from lanthorn.celery import app
app.loader.import_default_modules()
DjangoWorkerFixup(app).validate_models()
import inference.engine, inference.tasks, inference.worker
print(sorted(m for m in ("rest_framework.views", "rest_framework.renderers", "rest_framework.serializers",
                         "requests", "drf_spectacular.extensions") if m in sys.modules))
"""


def test_it_keeps_drf_views_and_serializers_out_of_a_model_worker():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "lanthorn.settings", **WORKER_ENVIRONMENT}
    result = subprocess.run([sys.executable, "-c", WORKER], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"

