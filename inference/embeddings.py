"""Embeddings on the worker side: llama-cpp-python's embedding mode, one context per model.

A generation context cannot give embeddings, so each worker process opens the model a second
time with `embedding=True` (mean pooling, vectors normalised to length 1), once per model
version and load parameters, on the first embeddings request for it. The file is mmapped,
so the weights are shared with the generation engine; the second context costs its KV cache
and compute buffers only. A list of inputs is decoded in batches (several sequences per
`llama_decode`). The vectors go back to the request's reply channel in one
`inference.embeddings` event.
"""

import logging
import os
import threading
import time

from django.conf import settings

from core.errors import ApiError
from core.workers import worker_name
from inference import pages
from inference.publisher import Stream
from inference.worker import get_version

log = logging.getLogger(__name__)

# Tokens of one input that are embedded (the rest is cut off), and of one batch.
MAX_BATCH = 2048


class Embedder:
    def __init__(self, *, path, n_ctx: int, n_threads: int | None, n_gpu_layers: int, gpu_id: int):
        import llama_cpp

        threads = n_threads or os.cpu_count() or 1
        batch = min(n_ctx, MAX_BATCH)
        # Its KV cache, cleared at load, takes memory as it fills (inference/pages.py).
        with pages.giving_back_zero_pages(enabled=n_gpu_layers == 0):
            self.llm = llama_cpp.Llama(
                model_path=str(path), embedding=True, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                n_ctx=n_ctx, n_batch=batch, n_ubatch=batch, n_threads=threads, n_threads_batch=threads,
                n_gpu_layers=n_gpu_layers, main_gpu=gpu_id, verbose=False)
        self.lock = threading.Lock()  # a llama context serves one caller at a time
        self.closed = False

    def embed(self, inputs: list[str]) -> tuple[list[list[float]], int] | None:
        """The inputs' vectors and their token count; None if the embedder was closed meanwhile."""
        with self.lock:
            if self.closed:
                return None
            return self.llm.embed(inputs, normalize=True, truncate=True, return_count=True)

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.llm.close()


_embedders: dict[str, tuple[tuple, Embedder]] = {}  # model name → (its key, its embedder)
_lock = threading.Lock()


def get_embedder(*, model: str, digest: str, path, load: dict) -> Embedder:
    """The process's embedder for a model, opened on first use; a model that moved to another
    version or other load parameters gets a new one, and its previous one is closed."""
    key = (digest, tuple(sorted(load.items())))
    with _lock:
        current = _embedders.get(model)
        if current is not None and current[0] == key:
            return current[1]
        if not path.exists():
            raise ApiError(503, f"model file {path.name} is missing from the blob store", code="model_unavailable")
        log.info("opening %s for embeddings", path.name)
        try:
            embedder = Embedder(path=path, n_ctx=load["n_ctx"], n_threads=load.get("n_threads"),
                                n_gpu_layers=load.get("n_gpu_layers", 0), gpu_id=load.get("gpu_id", 0))
        except ValueError as exc:
            raise ApiError(503, f"the model could not be loaded: {exc}", code="model_unavailable") from exc
        _embedders[model] = (key, embedder)
    if current is not None:
        current[1].close()
    return embedder


def run_embedding(*, request_id: str, reply_channel: str, version_id: int, load: dict, inputs: list[str],
                  enqueued_at: float) -> None:
    """Embeds the inputs with the model's embedding context, sending the vectors to `reply_channel`."""
    if time.time() - enqueued_at > settings.LANTHORN_WORKER_TIMEOUT:
        return  # its client gave up long ago
    stream = Stream(reply_channel)
    stream.event("inference.started", worker=worker_name())
    with stream.reporting_errors():
        version = get_version(version_id)
        result = None
        while result is None:  # None: that embedder was replaced just now; the next one serves
            result = get_embedder(model=version.model.name, digest=version.digest, path=version.path,
                                  load=load).embed(inputs)
        vectors, tokens = result
        stream.event("inference.embeddings", vectors=vectors, prompt_tokens=tokens)
