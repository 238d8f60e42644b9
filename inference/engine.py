"""The engine: one llama context per model version per worker process.

A worker keeps every model it has loaded in `_engines`, keyed by the file's digest
and its load parameters, so a model is loaded once, not per request. Each engine
owns its llama context on one scheduler thread; the Celery task threads hand it
jobs through a queue. Today the scheduler runs jobs one after another; because
all requests for a model already meet in this one loop, it is where continuous
batching (several sequences per llama_decode) goes.
"""

import codecs
import logging
import os
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core import metrics
from core.errors import ApiError
from inference.chat_templates import template_for

log = logging.getLogger(__name__)


@dataclass
class Job:
    """One request for the engine: what to generate and where the text goes."""

    prompt: str | None = None
    messages: list[dict] | None = None
    max_tokens: int = 256
    temperature: float = 0.8
    top_p: float = 0.95
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    on_token: Callable[[str], None] = lambda text: None
    is_cancelled: Callable[[], bool] = lambda: False
    # Filled in by the engine.
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = ""
    error: ApiError | None = None
    done: threading.Event = field(default_factory=threading.Event)


class StopFilter:
    """Cuts the output at the first stop string, holding back text that may be the start of one."""

    def __init__(self, stops: list[str]):
        self.stops = [s for s in stops if s]
        self.buffer = ""

    def feed(self, text: str) -> tuple[str, bool]:
        if not self.stops:
            return text, False
        self.buffer += text
        hits = [i for i in (self.buffer.find(s) for s in self.stops) if i >= 0]
        if hits:
            out, self.buffer = self.buffer[: min(hits)], ""
            return out, True
        keep = 0
        for stop in self.stops:
            for k in range(min(len(stop) - 1, len(self.buffer)), keep, -1):
                if self.buffer.endswith(stop[:k]):
                    keep = k
                    break
        cut = len(self.buffer) - keep
        out, self.buffer = self.buffer[:cut], self.buffer[cut:]
        return out, False

    def flush(self) -> str:
        out, self.buffer = self.buffer, ""
        return out


class Engine:
    def __init__(self, *, path: Path, n_ctx: int, n_threads: int | None, n_gpu_layers: int,
                 gpu_id: int, architecture: str, chat_template: str):
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        threads = n_threads or os.cpu_count() or 1
        self.llm = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                         n_gpu_layers=n_gpu_layers, main_gpu=gpu_id, verbose=False)
        self.n_ctx = self.llm.n_ctx()
        model = self.llm._model
        bos, eos = self.llm.token_bos(), self.llm.token_eos()
        template, turn_ends = template_for(architecture=architecture, gguf_template=chat_template)
        self.formatter = Jinja2ChatFormatter(
            template=template,
            bos_token=model.token_get_text(bos) if bos >= 0 else "",
            eos_token=model.token_get_text(eos) if eos >= 0 else "",
            add_generation_prompt=True,
        )
        self.stop_ids = {eos}
        for text in turn_ends:
            ids = self.llm.tokenize(text.encode(), add_bos=False, special=True)
            if len(ids) == 1:
                self.stop_ids.add(ids[0])
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._retired = False
        self._queue_lock = threading.Lock()
        self.busy = False  # generating an answer now (for the worker's heartbeat)
        threading.Thread(target=self._loop, name=f"engine-{path.name[:19]}", daemon=True).start()

    def submit(self, job: Job) -> Job | None:
        """Queues the job; None if the engine was retired meanwhile (ask get_engine again)."""
        with self._queue_lock:
            if self._retired:
                return None
            self._jobs.put(job)
        return job

    def retire(self) -> None:
        """Closes the model once the jobs already queued have finished (a newer version took over)."""
        with self._queue_lock:
            self._retired = True
            self._jobs.put(None)

    def _loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                log.info("unloading %s", self.llm.model_path)
                self.llm.close()
                return
            self.busy = True
            try:
                if job.is_cancelled():
                    job.finish_reason = "cancelled"
                else:
                    self._run(job)
            except ApiError as exc:
                job.error = exc
            except Exception as exc:  # a bug or a broken model must fail the request, not the loop
                log.exception("generation failed")
                job.error = ApiError(500, f"generation failed: {exc}", code="server_error")
            finally:
                self.busy = False
                job.done.set()

    def _prompt_tokens(self, job: Job) -> list[int]:
        if job.messages is not None:
            result = self.formatter(messages=job.messages)
            return self.llm.tokenize(result.prompt.encode(), add_bos=not result.added_special,
                                     special=True)
        return self.llm.tokenize(job.prompt.encode(), add_bos=True, special=False)

    def _run(self, job: Job) -> None:
        llm = self.llm
        tokens = self._prompt_tokens(job)
        job.prompt_tokens = len(tokens)
        room = self.n_ctx - len(tokens)
        if room <= 0:
            raise ApiError(
                400, f"This model's maximum context length is {self.n_ctx} tokens, "
                f"but the prompt has {len(tokens)} tokens.",
                code="context_length_exceeded", param="messages" if job.messages is not None else "prompt")
        limit = min(job.max_tokens, room)
        llm.set_seed(job.seed if job.seed is not None else random.getrandbits(31))
        # Bytes of a character split across tokens wait here until the character is whole.
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = StopFilter(job.stop)
        finish = "length"
        generated = 0
        if limit > 0:
            for token in llm.generate(tokens, temp=job.temperature, top_p=job.top_p, reset=True):
                if token in self.stop_ids:
                    finish = "stop"
                    break
                generated += 1
                text, stopped = stops.feed(decoder.decode(llm.detokenize([token])))
                if text:
                    job.on_token(text)
                if stopped:
                    finish = "stop"
                    break
                if generated >= limit:
                    break
                if job.is_cancelled():
                    finish = "cancelled"
                    break
        if finish != "stop":
            rest, _ = stops.feed(decoder.decode(b"", final=True))
            rest += stops.flush()
            if rest:
                job.on_token(rest)
        job.completion_tokens = generated
        job.finish_reason = finish


_engines: dict[tuple, Engine] = {}
_current: dict[str, tuple] = {}  # model name → key of the engine serving its active version
_engines_lock = threading.Lock()
_loading: dict[str, str] = {}  # model name → digest of the file being loaded now


def status() -> dict:
    """What this process serves, for its heartbeat: each model's loaded version and state
    (loading, generating, idle) as `loaded` (the heartbeat's `models` are the names it serves),
    and the process's state (the busiest of them). Reads without the lock, which a load holds
    for seconds."""
    models = [{"model": model, "digest": key[0][:12],
               "state": "generating" if getattr(_engines.get(key), "busy", False) else "idle"}
              for model, key in list(_current.items())]
    models += [{"model": model, "digest": digest[:12], "state": "loading"}
               for model, digest in list(_loading.items())]
    states = {m["state"] for m in models}
    state = next((s for s in ("loading", "generating") if s in states), "idle")
    return {"state": state, "loaded": sorted(models, key=lambda m: m["model"])}


def get_engine(*, model: str, digest: str, path: Path, load: dict, architecture: str,
               chat_template: str) -> Engine:
    """The process's engine for this file and load parameters, loading it on first use. When a
    model moves to another version (or other load parameters), its previous engine finishes the
    requests it has and is unloaded."""
    key = (digest, tuple(sorted(load.items())))
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            if not path.exists():
                raise ApiError(503, f"model file {path.name} is missing from the blob store",
                               code="model_unavailable")
            log.info("loading %s with %s", path.name, load)
            _loading[model] = digest
            started = time.monotonic()
            try:
                engine = Engine(path=path, architecture=architecture, chat_template=chat_template, **load)
            except ValueError as exc:
                raise ApiError(503, f"the model could not be loaded: {exc}",
                               code="model_unavailable") from exc
            finally:
                _loading.pop(model, None)
            metrics.MODEL_LOADS.labels(model).inc()
            metrics.MODEL_LOAD_SECONDS.labels(model).observe(time.monotonic() - started)
            _engines[key] = engine
        # Only once the new engine is there does the model's previous one go.
        previous, _current[model] = _current.get(model), key
        if previous != key and previous in _engines and previous not in _current.values():
            _engines.pop(previous).retire()
    return engine
