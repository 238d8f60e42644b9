"""Shared reads of the console: the API key of a request, who may see which usage rows, and the
dashboard's figures.

The dashboard's figures come from the per-minute rollup that `console.services.record_usage`
fills as it writes each usage row (UsageMinute: requests, errors and tokens per minute and
model; UsageMinuteBucket: how many latencies and TTFTs fell in each log-spaced bucket), once
for everyone and once per user, so a day is at most 1,440 rows per model however many requests
it had. Percentiles are read from the bucket counts: exact to within one bucket (±12 %).
"""

import bisect
import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import QuerySet, Sum
from django.utils import timezone

from console.models import ApiKey, UsageMinute, UsageMinuteBucket, UsageRecord
from console.roles import auditor_annotation, can_audit
from core.memo import Memo

_keys = Memo()


def key_by_hash(hashed_key: str) -> ApiKey | None:
    """The key with its owner (and whether the owner is an auditor), revoked or not; a copy kept by
    this process (core.memo), to be read, not changed."""
    def load():
        key = (ApiKey.objects.select_related("user").annotate(owner_in_auditors=auditor_annotation("user_id"))
               .filter(hashed_key=hashed_key).first())
        if key is not None:
            key.user.in_auditors = key.owner_in_auditors
        return key

    return _keys.get(hashed_key, load)


def visible_usage(user) -> QuerySet:
    """Admins and auditors see every usage row; members their own."""
    rows = UsageRecord.objects.all()
    return rows if can_audit(user) else rows.filter(user=user)


def rollup_scope(user) -> str:
    """Which of the rollup's rows `user` reads: everyone's ("") for admins and auditors, else their own."""
    return "" if can_audit(user) else str(user.pk)


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


def bucket_of(value_ms: float) -> int:
    """The histogram bucket of a latency or TTFT (len(EDGES) for beyond the last edge)."""
    return bisect.bisect_right(EDGES, value_ms)


def _bucket_value(i: int) -> float:
    """A bucket's representative: the geometric middle of its bounds."""
    if i >= len(EDGES):
        return EDGES[-1]
    low = EDGES[i - 1] if i else 0.0
    return math.sqrt(low * EDGES[i]) if low else EDGES[i] / 2


def percentiles(buckets: QuerySet, *, metric: str, quantiles=(0.5, 0.95)) -> dict[str, list[float]]:
    """model → the quantiles of `metric`, from the rollup's bucket counts summed in SQL."""
    counts: dict[str, dict[int, int]] = defaultdict(dict)
    grouped = (buckets.filter(metric=metric).values_list("model_name", "bucket").annotate(n=Sum("count"))
               .order_by())
    for model, bucket, n in grouped:
        counts[model][bucket] = n
    result = {}
    for model, by_bucket in counts.items():
        total, values = sum(by_bucket.values()), []
        for q in quantiles:
            seen = 0
            for bucket, n in sorted(by_bucket.items()):
                seen += n
                if seen >= q * total:
                    values.append(round(_bucket_value(bucket), 1))
                    break
        result[model] = values
    return result


def window_figures(scope: str, *, window: Window, now: datetime) -> dict:
    """Per model over the window (its whole minutes up to now's): requests per minute, tokens
    per second, error rate, p50/p95 latency and TTFT; and the charts' series, one point per step."""
    since = now.replace(second=0, microsecond=0) - window.length + timedelta(minutes=1)
    minutes = list(UsageMinute.objects.filter(scope=scope, minute__gte=since, minute__lte=now)
                   .values_list("minute", "model_name", "requests", "errors", "completion_tokens"))
    buckets = UsageMinuteBucket.objects.filter(scope=scope, minute__gte=since, minute__lte=now)
    latency = percentiles(buckets, metric=UsageMinuteBucket.LATENCY)
    ttft = percentiles(buckets, metric=UsageMinuteBucket.TTFT)
    totals: dict[str, list[int]] = {}
    for _, model, requests, errors, tokens in minutes:
        sums = totals.setdefault(model, [0, 0, 0])
        sums[0] += requests
        sums[1] += errors
        sums[2] += tokens
    seconds = window.length.total_seconds()
    models = []
    for name, (requests, errors, tokens) in sorted(totals.items()):
        lat, first = latency.get(name, [None, None]), ttft.get(name, [None, None])
        models.append({
            "model": name or "(none)",
            "requests": requests,
            "requests_per_minute": round(requests / (seconds / 60), 3),
            "tokens_per_second": round(tokens / seconds, 3),
            "error_rate": round(errors / requests, 4) if requests else 0.0,
            "latency_p50_ms": lat[0], "latency_p95_ms": lat[1],
            "ttft_p50_ms": first[0], "ttft_p95_ms": first[1],
        })
    return {"models": models, "series": series(minutes, window=window, now=now)}


def series(minutes: list[tuple], *, window: Window, now: datetime) -> dict:
    """The charts' data from the window's rollup rows: x = the start of each step (epoch
    seconds); per model, requests per minute, tokens per second and errors in each step (zero
    where there were none)."""
    step = int(window.step.total_seconds())
    end = int(now.timestamp()) // step * step
    xs = [end - step * i for i in range(window.points - 1, -1, -1)]
    per_model: dict[str, dict[str, list]] = {}
    for minute, model, requests, errors, tokens in minutes:
        i = (int(minute.timestamp()) - xs[0]) // step
        if not 0 <= i < len(xs):
            continue
        lines = per_model.setdefault(model or "(none)", {"requests_per_minute": [0.0] * len(xs),
                                                          "tokens_per_second": [0.0] * len(xs),
                                                          "errors": [0] * len(xs)})
        lines["requests_per_minute"][i] += requests / (step / 60)
        lines["tokens_per_second"][i] += tokens / step
        lines["errors"][i] += errors
    for lines in per_model.values():
        for name in ("requests_per_minute", "tokens_per_second"):
            lines[name] = [round(v, 3) for v in lines[name]]
    return {"x": xs, "models": per_model}


def dashboard_figures(user, *, now: datetime | None = None) -> dict:
    """Everything the dashboard's figures and charts show, for what `user` may see."""
    now = now or timezone.now()
    scope = rollup_scope(user)
    return {window.name: window_figures(scope, window=window, now=now) for window in WINDOWS}


def live_state() -> dict:
    """What the machines are doing now, from Redis: each live worker's kind, state and loaded
    models (its heartbeat), and how many requests wait in each model's Celery queue.
    None for both when Redis does not answer."""
    from redis.exceptions import RedisError

    from core.redis import redis_client
    from core.workers import INFERENCE, workers as live_workers
    from lanthorn.celery import JOBS_QUEUE
    from registry.models import Model

    try:
        workers = [{"name": w["name"], "kind": w.get("kind", INFERENCE), "state": w.get("state", "unknown"),
                    "models": w.get("loaded", []), "jobs": w.get("jobs", [])}
                   for w in live_workers()]
        client = redis_client()
        queues = [{"queue": queue, "model": model, "depth": client.llen(queue)}
                  for model, queue in [(m.name, m.queue) for m in Model.objects.order_by("name")]
                  + [(None, JOBS_QUEUE)]]
    except RedisError:
        return {"workers": None, "queues": None}
    return {"workers": workers, "queues": queues}
