"""Liveness, readiness and metrics: `/healthz`, `/readyz`, `/metrics`.

`/healthz` says the process answers and asks nothing else (a load balancer or compose restarts
what fails it). `/readyz` asks the database, Redis and, for each active model, whether a live
worker serves it (jobs workers are counted, not required); when not ready it names the component,
never an exception's text (the log has that).
"""

import hmac
import ipaddress
import logging

from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from core.errors import ApiError
from core.redis import redis_client
from core.workers import INFERENCE, JOBS, live_workers, serving

log = logging.getLogger(__name__)


def healthz(request):
    """200 while the process answers: liveness, with no dependency."""
    return JsonResponse({"status": "ok"})


def readiness() -> dict[str, str]:
    """Each component's state: "ok", or why not (in words, naming the component)."""
    from registry.models import Model

    checks, models = {}, []
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        log.warning("readiness: the database does not answer", exc_info=True)
        checks["database"] = "the database does not answer"
    else:
        try:
            models = list(Model.objects.filter(active_version__isnull=False).values_list("name", flat=True))
            checks["database"] = "ok"
        except Exception:
            log.warning("readiness: the database is not set up", exc_info=True)
            checks["database"] = "the database is not set up (run `lanthorn setup`)"
    try:
        redis_client().ping()
        checks["redis"] = "ok"
    except Exception:
        log.warning("readiness: Redis does not answer", exc_info=True)
        checks["redis"] = "Redis does not answer"
        return checks
    checks["workers"] = "ok" if live_workers(kind=INFERENCE) else "no inference worker is running"
    for name in models:
        checks[f"model:{name}"] = "ok" if serving(model=name) else "no live worker serves this model"
    return checks


def jobs_workers() -> int | None:
    """How many jobs workers (pulls, checks) are alive; None when Redis does not answer."""
    try:
        return len(live_workers(kind=JOBS))
    except Exception:
        return None


def readyz(request):
    """200 when the database, Redis and a worker for each active model answer; 503 naming what
    does not. `jobs_workers` counts the workers of pulls and checks: none does not make the
    server unready (pulls and checks wait for one)."""
    checks = readiness()
    failing = {name: state for name, state in checks.items() if state != "ok"}
    jobs = jobs_workers() if checks.get("redis") == "ok" else None
    if failing:
        reason = "; ".join(f"{name}: {state}" for name, state in failing.items())
        return JsonResponse({"status": "not ready", "reason": reason, "checks": checks, "jobs_workers": jobs},
                            status=503)
    return JsonResponse({"status": "ok", "checks": checks, "jobs_workers": jobs})


class _RedisCollector:
    """What only Redis knows, read at scrape time: each model's queue and the live workers."""

    def collect(self):
        from registry.models import Model

        depth = GaugeMetricFamily("lanthorn_queue_depth", "Requests waiting in a model's queue.",
                                  labels=["model"])
        alive = GaugeMetricFamily("lanthorn_workers_alive", "Inference workers with a live heartbeat.")
        try:
            client = redis_client()
            names = list(Model.objects.values_list("name", flat=True))
            pipe = client.pipeline(transaction=False)
            for name in names:
                pipe.llen(f"model.{name}")
            for name, length in zip(names, pipe.execute()):
                depth.add_metric([name], length)
            alive.add_metric([], len(live_workers(kind=INFERENCE)))
        except Exception:
            log.warning("metrics: Redis does not answer", exc_info=True)
            return
        yield depth
        yield alive


def _metrics_allowed(request) -> bool:
    token = settings.LANTHORN_METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip(), token):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in settings.METRICS_ALLOW_NETWORKS)


def metrics(request):
    """Prometheus text format, summed over every process of the installation."""
    if not _metrics_allowed(request):
        error = ApiError(403, "Metrics need LANTHORN_METRICS_TOKEN as a Bearer token, or a request from "
                         "a LANTHORN_METRICS_ALLOW address.", code="forbidden")
        return JsonResponse(error.body(), status=error.status)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(_RedisCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
