"""The response cache: answers to deterministic requests, kept in Redis.

A request is deterministic when it samples greedily (temperature 0) or with a fixed seed: the
engine gives the same text for it whatever else runs (see `inference.engine`), so a stored answer
is the answer a fresh run would give. The key holds the model version's digest, so activating
another version makes the old answers unreachable (they expire with their TTL).
"""

import hashlib
import json

from core.redis import redis_client

KEY = "lanthorn:answer:{}"


def cache_key(*, digest: str, kind: str, job: dict) -> str | None:
    """The request's key, or None when its answer is not deterministic."""
    if job.get("temperature") != 0 and job.get("seed") is None:
        return None
    body = json.dumps({"digest": digest, "kind": kind, "job": job}, sort_keys=True, separators=(",", ":"))
    return KEY.format(hashlib.sha256(body.encode()).hexdigest())


def lookup(key: str) -> dict | None:
    """The stored answer: {"pieces", "finish_reason", "prompt_tokens", "completion_tokens"}."""
    raw = redis_client().get(key)
    return None if raw is None else json.loads(raw)


def store(key: str, answer: dict, *, ttl: int) -> None:
    redis_client().set(key, json.dumps(answer, separators=(",", ":")), ex=ttl)
