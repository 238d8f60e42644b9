"""Worker presence: each worker process marks itself alive in Redis; the web side asks who is,
and which models they serve.

Two kinds of key, both refreshed by every heartbeat and both expiring on their own:
- `lanthorn:worker:<name>`: a small JSON value (host, models, slots, and what else a worker
  tells about itself), so that `/api/workers` can list them;
- `lanthorn:serving:<model>`: a sorted set of the workers that serve the model, scored by when
  their heartbeat runs out, so that "does anyone serve this model?" is one Redis read.
  A worker started without `--models` serves every model (the set `lanthorn:serving:*`).

A worker's value also says its `kind`: an inference worker (model queues) or a jobs worker (the
`jobs` queue: pulls and checks), which serves no model; the dashboard shows its `state` and,
for an inference worker, the versions it has `loaded`.
"""

import hashlib
import json
import os
import socket
import time

from django.conf import settings

from core.redis import redis_client

WORKER_KEY = "lanthorn:worker:{}"
SERVING_KEY = "lanthorn:serving:{}"
ALL_MODELS = "*"
INFERENCE, JOBS = "inference", "jobs"  # a worker's kind: model queues, or the background jobs queue


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def installation_id() -> str:
    """Names this installation by its database: every process of one installation, on any host,
    shares it, so a worker of another installation on the same Redis shows (`lanthorn doctor`)."""
    from django.db import connection

    db = connection.settings_dict
    where = "|".join(str(db.get(k) or "") for k in ("ENGINE", "HOST", "PORT", "NAME"))
    return hashlib.sha256(where.encode()).hexdigest()[:16]


def beat(*, worker: str, models: list[str] | None = None, **details) -> None:
    """Marks this worker alive for the next LANTHORN_HEARTBEAT_TTL seconds, serving `models`
    (None: every model). `details` (slots, state, ...) go into its JSON value as they are."""
    ttl = settings.LANTHORN_HEARTBEAT_TTL
    served = [ALL_MODELS] if models is None else list(models)
    value = {"host": socket.gethostname(), "pid": os.getpid(), "models": served,
             "installation": installation_id(), **details}
    pipe = redis_client().pipeline(transaction=False)
    pipe.set(WORKER_KEY.format(worker), json.dumps(value, separators=(",", ":")), ex=ttl)
    expires = time.time() + ttl
    for model in served:
        key = SERVING_KEY.format(model)
        pipe.zadd(key, {worker: expires})
        pipe.zremrangebyscore(key, "-inf", time.time())
        pipe.expire(key, ttl)
    pipe.execute()


def forget(*, worker: str, models: list[str] | None = None) -> None:
    """A worker that stops cleanly says so at once."""
    pipe = redis_client().pipeline(transaction=False)
    pipe.delete(WORKER_KEY.format(worker))
    for model in [ALL_MODELS] if models is None else models:
        pipe.zrem(SERVING_KEY.format(model), worker)
    pipe.execute()


def worker_alive(*, worker: str | None) -> bool:
    """Whether this worker (any inference worker, for None) sent a heartbeat lately."""
    if worker is None:
        return bool(live_workers(kind=INFERENCE))
    return bool(redis_client().exists(WORKER_KEY.format(worker)))


def live_workers(*, kind: str | None = None) -> list[str]:
    """The names of the workers alive now (of one kind, if given)."""
    if kind is None:
        prefix = WORKER_KEY.format("")
        return [k.decode()[len(prefix):] for k in redis_client().scan_iter(match=prefix + "*")]
    return [w["name"] for w in workers() if w.get("kind", INFERENCE) == kind]


def serving(*, model: str) -> bool:
    """Whether a live worker serves `model` (one round trip to Redis)."""
    now = time.time()
    pipe = redis_client().pipeline(transaction=False)
    pipe.zcount(SERVING_KEY.format(model), now, "+inf")
    pipe.zcount(SERVING_KEY.format(ALL_MODELS), now, "+inf")
    return any(pipe.execute())


def workers() -> list[dict]:
    """The live workers, each as its heartbeat describes it, plus its `name`; sorted by name."""
    names = sorted(live_workers())
    if not names:
        return []
    values = redis_client().mget([WORKER_KEY.format(n) for n in names])
    found = []
    for name, value in zip(names, values):
        if value is None:  # expired between the scan and the read
            continue
        try:
            info = json.loads(value)
        except ValueError:  # a heartbeat from before values were JSON
            info = {}
        found.append({"name": name, **(info if isinstance(info, dict) else {})})
    return found
