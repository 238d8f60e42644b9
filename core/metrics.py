"""Prometheus metrics, shared by the web and worker processes (prometheus_client's multi-process
mode: each process writes its values under PROMETHEUS_MULTIPROC_DIR, `/metrics` adds them up).

Requests are counted where they finish (`inference.services.finish_request`), model loads where
an engine loads. Queue depths and live workers are read from Redis when `/metrics` is scraped.
"""

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter("lanthorn_requests", "Requests that finished, by door, model and HTTP status.",
                   ["interface", "model", "status"])
TOKENS = Counter("lanthorn_tokens", "Tokens in (prompt) and out (completion).", ["model", "direction"])
TTFT = Histogram("lanthorn_time_to_first_token_seconds", "Time from a request's arrival to its first token.",
                 ["model"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60))
LATENCY = Histogram("lanthorn_request_duration_seconds", "Time from a request's arrival to its end.",
                    ["interface", "model"], buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300))
# Set by the engine: how many sequences share its current batch.
BATCH_OCCUPANCY = Gauge("lanthorn_batch_occupancy", "Sequences in the engine's current batch.", ["model"],
                        multiprocess_mode="livesum")
MODEL_LOADS = Counter("lanthorn_model_loads", "Models loaded by workers.", ["model"])
MODEL_LOAD_SECONDS = Histogram("lanthorn_model_load_seconds", "How long loading a model took.", ["model"],
                               buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120))
# Counted by the response cache.
CACHE_HITS = Counter("lanthorn_cache_hits", "Answers served from the response cache.", ["model"])
