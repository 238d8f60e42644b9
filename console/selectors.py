"""Shared reads of the console: who may see which usage rows, and the dashboard's figures.

Every figure is computed in the database over an indexed time range (`created_at`, and
`(user, created_at)` for a member's own rows): counts and sums by model, by minute or hour for
the charts (time buckets as a tree of CASEs over the step boundaries, no per-row function call), and latency/TTFT percentiles from a histogram of log-spaced buckets counted in SQL
(so a day of rows never travels to Python; a percentile is exact to within one bucket, ±12 %).
"""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.db.models import Case, Count, IntegerField, Q, QuerySet, Sum, Value, When
from django.utils import timezone

from console.models import UsageRecord
from console.roles import can_audit


def visible_usage(user) -> QuerySet:
    """Admins and auditors see every usage row; members their own."""
    rows = UsageRecord.objects.all()
    return rows if can_audit(user) else rows.filter(user=user)


@dataclass(frozen=True)
class Window:
    name: str
    length: timedelta
    step: timedelta  # one point of the charts

    @property
    def points(self) -> int:
        return int(self.length / self.step)


WINDOWS = (
    Window("hour", timedelta(hours=1), timedelta(minutes=1)),
    Window("day", timedelta(days=1), timedelta(hours=1)),
)

# Histogram bucket i holds values below EDGES[i] ms (and at least EDGES[i - 1]): 1 ms to ~1 h.
RATIO = 1.25
EDGES = [RATIO ** i for i in range(int(math.log(3_600_000, RATIO)) + 2)]


def _bucket(field: str, edges: list) -> Case | Value:
    """Which bucket `field` falls in, as SQL: bucket i holds values below edges[i] and at least
    edges[i - 1]; bucket len(edges) the rest. A binary tree of CASEs (log2 of the edges deep), so
    each row costs a handful of comparisons, in SQLite and PostgreSQL alike."""

    def tree(lo: int, hi: int):
        if lo == hi:
            return Value(lo, output_field=IntegerField())
        mid = (lo + hi) // 2
        return Case(When(**{f"{field}__lt": edges[mid]}, then=tree(lo, mid)), default=tree(mid + 1, hi),
                    output_field=IntegerField())

    return tree(0, len(edges))


def _bucket_value(i: int) -> float:
    """A bucket's representative: the geometric middle of its bounds."""
    if i >= len(EDGES):
        return EDGES[-1]
    low = EDGES[i - 1] if i else 0.0
    return math.sqrt(low * EDGES[i]) if low else EDGES[i] / 2


def percentiles(rows: QuerySet, *, field: str, quantiles=(0.5, 0.95)) -> dict[str, list[float | None]]:
    """model → the quantiles of `field`, from one grouped count of histogram buckets."""
    counts: dict[str, dict[int, int]] = {}
    grouped = (rows.filter(**{f"{field}__isnull": False}).annotate(bucket=_bucket(field, EDGES))
               .values_list("model_name", "bucket").annotate(n=Count("id")).order_by())
    for model, bucket, n in grouped:
        counts.setdefault(model, {})[bucket] = n
    result = {}
    for model, buckets in counts.items():
        total, seen, values = sum(buckets.values()), 0, []
        ordered = sorted(buckets.items())
        for q in quantiles:
            rank, seen = q * total, 0
            for bucket, n in ordered:
                seen += n
                if seen >= rank:
                    values.append(round(_bucket_value(bucket), 1))
                    break
        result[model] = values
    return result


def window_figures(rows: QuerySet, *, window: Window, now: datetime) -> dict:
    """Per model over the window: requests per minute, tokens per second, error rate, p50/p95
    latency and TTFT; and the charts' series, one point per step."""
    since = now - window.length
    rows = rows.filter(created_at__gte=since, created_at__lte=now)
    seconds = window.length.total_seconds()
    totals = (rows.values("model_name").order_by("model_name")
              .annotate(requests=Count("id"), errors=Count("id", filter=Q(outcome="error")),
                        tokens=Sum("completion_tokens")))
    latency = percentiles(rows, field="latency_ms")
    ttft = percentiles(rows, field="ttft_ms")
    models = []
    for row in totals:
        name = row["model_name"]
        lat, first = latency.get(name, [None, None]), ttft.get(name, [None, None])
        models.append({
            "model": name or "(none)",
            "requests": row["requests"],
            "requests_per_minute": round(row["requests"] / (seconds / 60), 3),
            "tokens_per_second": round((row["tokens"] or 0) / seconds, 3),
            "error_rate": round(row["errors"] / row["requests"], 4) if row["requests"] else 0.0,
            "latency_p50_ms": lat[0], "latency_p95_ms": lat[1],
            "ttft_p50_ms": first[0], "ttft_p95_ms": first[1],
        })
    return {"models": models, "series": series(rows, window=window, now=now)}


def series(rows: QuerySet, *, window: Window, now: datetime) -> dict:
    """The charts' data: x = the start of each step (epoch seconds); per model, requests per
    minute, tokens per second and errors in each step (zero where there were none)."""
    step = window.step.total_seconds()
    end = int(now.timestamp() // step * step)
    xs = [end - step * i for i in range(window.points - 1, -1, -1)]
    # Time bucket i + 1 is the step that starts at xs[i]; bucket 0, rows before the first step.
    edges = [datetime.fromtimestamp(x, tz=dt_timezone.utc) for x in xs[1:]]
    edges.insert(0, datetime.fromtimestamp(xs[0], tz=dt_timezone.utc))
    per_model: dict[str, dict[str, list]] = {}
    grouped = (rows.annotate(t=_bucket("created_at", edges)).values_list("model_name", "t")
               .annotate(n=Count("id"), tokens=Sum("completion_tokens"),
                         errors=Count("id", filter=Q(outcome="error"))).order_by())
    for model, t, n, tokens, errors in grouped:
        if t == 0:
            continue
        i = t - 1
        lines = per_model.setdefault(model or "(none)", {"requests_per_minute": [0.0] * len(xs),
                                                          "tokens_per_second": [0.0] * len(xs),
                                                          "errors": [0] * len(xs)})
        lines["requests_per_minute"][i] = round(n / (step / 60), 3)
        lines["tokens_per_second"][i] = round((tokens or 0) / step, 3)
        lines["errors"][i] = errors
    return {"x": xs, "models": per_model}


def dashboard_figures(user, *, now: datetime | None = None) -> dict:
    """Everything the dashboard's figures and charts show, for what `user` may see."""
    now = now or timezone.now()
    rows = visible_usage(user)
    return {window.name: window_figures(rows, window=window, now=now) for window in WINDOWS}


def live_state() -> dict:
    """What the machines are doing now, from Redis: each live worker's kind, state and loaded
    models (its heartbeat), and how many requests wait in each model's Celery queue.
    None for both when Redis does not answer."""
    from redis.exceptions import RedisError

    from core.redis import redis_client
    from core.workers import worker_info
    from lanthorn.celery import JOBS_QUEUE
    from registry.models import Model

    try:
        workers = [{"name": name, "kind": info.get("kind", "inference"), "state": info.get("state", "unknown"),
                    "models": info.get("models", []), "jobs": info.get("jobs", [])}
                   for name, info in worker_info().items()]
        client = redis_client()
        queues = [{"queue": queue, "model": model, "depth": client.llen(queue)}
                  for model, queue in [(m.name, m.queue) for m in Model.objects.order_by("name")]
                  + [(None, JOBS_QUEUE)]]
    except RedisError:
        return {"workers": None, "queues": None}
    return {"workers": workers, "queues": queues}
