from django.db import connection
from django.http import JsonResponse

from core.redis import redis_client
from core.workers import INFERENCE, JOBS, live_workers


def healthz(request):
    """200 when the database, Redis and at least one inference worker answer; 503 naming what
    does not. The jobs workers are counted too (none only means pulls and checks wait)."""
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {exc}"
    try:
        redis_client().ping()
        checks["redis"] = "ok"
        workers = live_workers(kind=INFERENCE)
        checks["workers"] = len(workers) if workers else "error: no inference worker is running"
        checks["jobs_workers"] = len(live_workers(kind=JOBS))
    except Exception as exc:
        checks["redis"] = f"error: {exc}"
        checks["workers"] = "unknown: Redis is down"
    failing = [name for name, value in checks.items() if isinstance(value, str) and value != "ok"]
    if failing:
        reason = "; ".join(f"{name}: {checks[name]}" for name in failing)
        return JsonResponse({"status": "error", "reason": reason, "checks": checks}, status=503)
    return JsonResponse({"status": "ok", "checks": checks})
