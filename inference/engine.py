"""The engine: one llama context per model version per worker process, batching its requests.

A worker keeps every model it has loaded in `_engines`, keyed by the file's digest and its load
parameters, so a model is loaded once, not per request. Each engine owns its llama context on one
scheduler thread; the Celery task threads hand it jobs through a queue.

The scheduler is a continuous batcher in the manner of llama.cpp's server: the context has one
KV cache stream per slot (`slots` sequences of `n_ctx` tokens each), every request runs in a slot
as its own sequence, and each step is one `llama_decode` that carries the next token of every
generating sequence, then prompt pieces of waiting requests (at most PROMPT_BUDGET tokens, so one
long prompt cannot stall the others), each piece in a decode of its own. New requests take a free slot
between steps (see Engine._placement); a cancelled request leaves at the next step.

Greedy output does not depend on what runs beside a request or ran before it:
- each slot has its own KV stream (`kv_unified` off), so a sequence's attention never sees
  another sequence's cells, and its cells sit at the same place whoever else is there;
- with `invariant` on (the default), weights stay in their file layout (no repacking into the
  CPU's interleaved layouts, whose batched kernels sum in another order than the one-row kernel),
  so each row of a batch gets the result it would get alone;
- prompts are evaluated alone, in pieces of PIECE tokens (the last piece of a prompt takes the
  rest, TILE to PIECE + TILE - 1): from TILE query rows, Lanthorn's attention kernel (or, where it
  is off, ggml's tiled one) computes each row, and its result for a row does not depend on the
  other rows of the ubatch, while fewer rows take ggml's one-row kernel, which sums in another
  order. So a prompt token's KV is the same whatever piece it came in, and a slot reuses the KV
  of every prompt token it holds; when fewer than TILE tokens are left to evaluate, the piece
  starts earlier, evaluating reused tokens again (to the same values). A prompt shorter than
  TILE is evaluated whole, in one piece, and not reused (measured: logits the same to the bit for
  any split of 300 to 1,700 tokens in pieces of 64 to 127; a last piece of 44 rows gave other
  logits);
- with `invariant` on, the KV of generated tokens (evaluated one a step, beside other sequences)
  is not reused for a later prompt that repeats them (the next turn of a chat): those tokens are
  evaluated again in the prompt's pieces, as they would be on a fresh slot. Without it every
  cached token is reused;
- every step's decode is one ubatch over two or more neighbouring KV streams, so each token goes
  through the same kernels whoever else generates. llama.cpp puts only consecutive sequence ids
  in one ubatch when the streams are separate, and its CPU flash attention takes another path
  (the KV split across threads, summed in another order) for one lone sequence once it holds 512
  cells. So the rows run from the lowest to the highest generating slot, a slot between them that
  is not generating gets a filler row (no logits, its cell removed after the step), and a lone
  sequence of LONE_CELLS or more gets a neighbour's filler row. Measured: without it, answers of
  64 tokens alone and eight at once differed in 5 of 8 prompts;
- where the CPU has AVX2 and the model's output matrix is Q8_0 (the default model's), the
  output layer runs on Lanthorn's kernel (inference/head.py): a row's logits are the same for
  any number of rows (and llama.cpp's to rounding), in less than half the time for 4 rows;
- where the CPU has AVX2, the layers' Q5_0, Q8_0, Q4_K and Q6_K matmuls run on Lanthorn's kernel
  (inference/matmul.py), whose result for a row is the same for any number of rows, and which is
  faster than ggml's for 1 row and for 8;
- where the CPU has AVX2, the attention of prompt pieces runs on Lanthorn's kernel
  (inference/attention.py), which turns each tile of KV cells into floats once for all the query
  heads that share it; a row's result is the same in any piece and any block of rows;
- ggml's tiled K-quant matmul, which starts at 8 rows, sums in another order than its one-row
  kernel and comes before Lanthorn's, is turned off (GGML_CPU_TILED_MM=0, before the first decode
  of the process).
"""

import codecs
import ctypes
import logging
import os
import queue
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import llama_cpp
import numpy
from django.conf import settings
from llama_cpp._internals import LlamaContext, LlamaModel, LlamaSampler
from llama_cpp._utils import suppress_stdout_stderr

from core import metrics
from core.errors import ApiError
from inference import attention, head, matmul, pages
from inference.chat_templates import template_for

log = logging.getLogger(__name__)

# ggml reads it once, at the process's first matmul (see the module's docstring).
os.environ.setdefault("GGML_CPU_TILED_MM", "0")

TILE = 64  # the fewest rows of a prompt piece: ggml's GGML_FA_TILE_Q (see the module's docstring)
# Prompt tokens per piece: the last piece of a prompt takes the rest, TILE to PIECE + TILE - 1.
# Measured on 2 cores: a fresh prompt of 1,036 tokens took 2.0 s in pieces of 128, 2.3-2.7 s in
# pieces of 64 (each thread's share of flash attention's query rows fills whole tiles) and 2.2 s in
# pieces of 256.
PIECE = 2 * TILE
LONE_CELLS = 240  # a lone generating sequence this long gets a filler row (see Engine._fillers)
PROMPT_BUDGET = PIECE + TILE - 1  # prompt tokens per step, all slots together, so generating ones keep pace


@dataclass
class Job:
    """One request for the engine: what to generate and where the text goes."""

    prompt: str | None = None
    messages: list[dict] | None = None
    max_tokens: int = 256
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 0  # 0: every token
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    on_token: Callable[[str], None] = lambda text: None
    is_cancelled: Callable[[], bool] = lambda: False
    # Filled in by the engine.
    prompt_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens whose KV a slot already held
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


class Slot:
    """One sequence of the shared context, with the tokens its KV stream holds."""

    def __init__(self, seq_id: int):
        self.seq_id = seq_id
        self.cached: list[int] = []  # tokens whose KV is in the stream, from position 0
        self.prompted = 0  # how many of them were evaluated as prompt pieces that may be reused
        self.job: Job | None = None
        self.used = 0  # step count when it last served, to pick the least recently used

    def start(self, job: Job, tokens: list[int], sampler: LlamaSampler | None, limit: int) -> None:
        self.job, self.tokens, self.sampler, self.limit = job, tokens, sampler, limit
        self.generated = 0
        self.next_token: int | None = None  # sampled, not yet in the KV cache
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.stops = StopFilter(job.stop)


_PLACEHOLDER = re.compile("\ue000(\\d+)\ue001")


class Engine:
    def __init__(self, *, path: Path, n_ctx: int, n_threads: int | None, n_gpu_layers: int,
                 gpu_id: int, architecture: str, chat_template: str, slots: int = 4,
                 invariant: bool = True):
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        threads = n_threads or os.cpu_count() or 1
        model_params = llama_cpp.llama_model_default_params()
        model_params.n_gpu_layers = n_gpu_layers
        model_params.main_gpu = gpu_id
        model_params.load_mode = llama_cpp.LLAMA_LOAD_MODE_MMAP  # worker processes share the weights
        model_params.use_extra_bufts = not invariant
        self.model = LlamaModel(path_model=str(path), params=model_params, verbose=False)
        self.n_ctx = min(n_ctx, self.model.n_ctx_train() or n_ctx)
        params = llama_cpp.llama_context_default_params()
        self.streams = max(slots, 2)  # a lone slot's filler row needs a neighbouring stream
        params.n_ctx = self.n_ctx * self.streams
        params.n_seq_max = self.streams
        params.kv_unified = False  # one KV stream per slot
        params.swa_full = True  # sliding-window layers keep whole prefixes, so they can be reused
        params.n_batch = params.n_ubatch = max(self.streams, PIECE + TILE - 1)  # a piece in one ubatch
        params.n_threads = params.n_threads_batch = threads
        if settings.LANTHORN_LAYER_KERNEL:
            matmul.install()  # for the whole process, before its first decode
        if settings.LANTHORN_ATTENTION_KERNEL:
            attention.install()
        self.head = head.for_context(n_threads=threads,
                                     enabled=n_gpu_layers == 0 and settings.LANTHORN_OUTPUT_KERNEL)
        if self.head is not None:
            self.head.attach(params)
        # The KV cache, cleared at its creation, takes memory as its cells fill, not all at once.
        with (pages.giving_back_zero_pages(enabled=n_gpu_layers == 0) as given_back,
              suppress_stdout_stderr(disable=False)):
            self.ctx = LlamaContext(model=self.model, params=params, verbose=False)  # llama.cpp logs it
        log.info("%s: %.0f MB of the new context's zero pages given back", path.name,
                 given_back["released"] / 2**20)
        self.path = path
        self.invariant = invariant
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.model.vocab)
        self.batch = llama_cpp.llama_batch_init(params.n_batch, 0, 1)
        self.slots = [Slot(i) for i in range(slots)]
        self._piece_buffer = ctypes.create_string_buffer(256)

        bos, eos = self.model.token_bos(), self.model.token_eos()
        self.bos = bos
        template, turn_ends = template_for(architecture=architecture, gguf_template=chat_template)
        self.formatter = Jinja2ChatFormatter(
            template=template,
            bos_token=self.model.token_get_text(bos) if bos >= 0 else "",
            eos_token=self.model.token_get_text(eos) if eos >= 0 else "",
            add_generation_prompt=True,
        )
        self.stop_ids = {eos}
        for text in turn_ends:
            ids = self.model.tokenize(text.encode(), add_bos=False, special=True)
            if len(ids) == 1:
                self.stop_ids.add(ids[0])
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._waiting: list[Job] = []
        self._retired = False
        self._queue_lock = threading.Lock()
        self._steps = 0
        self.filler_rows = 0  # decoded so far (see _fillers)
        # Every decode runs on the scheduler thread, the first one too. OpenMP (ggml's threads and
        # the output layer's) keeps a pool of threads for each thread that starts parallel work,
        # and once libgomp manages more threads than there are cores, its waiting threads spin
        # 100 times instead of some 300,000 before they sleep (libgomp's do_spin, OMP_WAIT_POLICY
        # unset), so every parallel part of a step waits for a thread to wake. Measured in a worker: a 1-token decode took
        # 12.2 ms with the first decode on the loading thread, 5.9 ms with every decode on one.
        started = threading.Event()
        threading.Thread(target=self._loop, args=(started,), name=f"engine-{path.name[:19]}", daemon=True).start()
        if not started.wait(120):
            log.warning("%s: the scheduler thread has not started in 120 s", path.name)

    def _take_output_layer(self) -> None:
        """A first decode shows the head the graph's output layer; it computes it from then on."""
        path = self.path
        self._row(0, token=max(self.bos, 0), pos=0, seq_id=0, logits=True)
        self.batch.n_tokens = 1
        status = llama_cpp.llama_decode(self.ctx.ctx, self.batch)
        llama_cpp.llama_memory_seq_rm(self.ctx.memory, 0, -1, -1)
        if status != 0:
            log.error("%s: llama.cpp computes the output layer: the first decode failed (%s)", path.name, status)
        elif self.head.arm():
            log.info("%s: the output layer runs on Lanthorn's kernel", path.name)
        else:
            log.info("%s: llama.cpp computes the output layer (not a plain Q8_0 matmul)", path.name)

    @property
    def busy(self) -> bool:
        """Whether a slot is generating an answer now (for the worker's heartbeat)."""
        return any(slot.job is not None for slot in self.slots)

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

    # The prompt

    def tokenize(self, text: str, *, special: bool = False) -> list[int]:
        return self.model.tokenize(text.encode(), add_bos=False, special=special)

    def _prompt_tokens(self, job: Job) -> list[int]:
        """The prompt's tokens. Only the chat template's own markers become special tokens: what
        people wrote is tokenized as text, so `<start_of_turn>` in a message cannot forge a turn."""
        if job.messages is None:
            return [self.bos, *self.tokenize(job.prompt)] if self.bos >= 0 else self.tokenize(job.prompt)
        whole = self.formatter(messages=job.messages).prompt
        marked = self.formatter(messages=[{**m, "content": f"\ue000{i}\ue001"}
                                          for i, m in enumerate(job.messages)]).prompt
        parts = _PLACEHOLDER.split(marked)  # template text, message index, template text, ...
        # Templates may trim what people wrote; the variant that renders the same text is the one.
        for shape in (str, str.strip):
            pieces = [(part, True) if i % 2 == 0 else (shape(job.messages[int(part)]["content"]), False)
                      for i, part in enumerate(parts)]
            if "".join(text for text, _ in pieces) == whole:
                break
        else:
            raise ApiError(400, "The chat template changes message contents in a way Lanthorn cannot "
                           "tokenize safely.", code="unsupported_template", param="messages")
        return [token for text, special in pieces if text for token in self.tokenize(text, special=special)]

    # The scheduler

    def _loop(self, started: threading.Event) -> None:
        if self.head is not None:
            self._take_output_layer()
        started.set()
        retiring = False
        while True:
            active = [s for s in self.slots if s.job is not None]
            if not active and not self._waiting:
                if retiring:
                    break
                job = self._jobs.get()  # idle: sleep until a request comes
                if job is None:
                    retiring = True
                    continue
                self._waiting.append(job)
            while True:  # everything that arrived meanwhile
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    retiring = True
                else:
                    self._waiting.append(job)
            self._admit()
            try:
                self._step()
            except Exception as exc:  # a broken model must fail its requests, not the loop
                log.exception("a decoding step failed")
                for slot in self.slots:
                    if slot.job is not None:
                        self._finish(slot, error=ApiError(500, f"generation failed: {exc}",
                                                          code="server_error"))
        log.info("unloading %s", self.path)
        llama_cpp.llama_batch_free(self.batch)
        self.ctx.close()
        if self.head is not None:
            self.head.close()
        self.model.close()

    def _admit(self) -> None:
        """Gives waiting jobs free slots, preferring the slot that holds the longest prefix."""
        while self._waiting:
            free = [s for s in self.slots if s.job is None]
            if not free:
                return
            job = self._waiting.pop(0)
            try:
                if job.is_cancelled():
                    job.finish_reason = "cancelled"
                    job.done.set()
                    continue
                tokens = self._prompt_tokens(job)
                job.prompt_tokens = len(tokens)
                room = self.n_ctx - len(tokens)
                if room <= 0:
                    raise ApiError(
                        400, f"This model's maximum context length is {self.n_ctx} tokens, "
                        f"but the prompt has {len(tokens)} tokens.", code="context_length_exceeded",
                        param="messages" if job.messages is not None else "prompt")
                running = [s.seq_id for s in self.slots if s.job is not None]
                slot = max(free, key=lambda s: self._placement(s, tokens, running))
                slot.start(job, tokens, _sampler(job), min(job.max_tokens, room))
            except ApiError as exc:
                job.error = exc
                job.done.set()
                continue
            except Exception as exc:
                log.exception("could not start a generation")
                job.error = ApiError(500, f"generation failed: {exc}", code="server_error")
                job.done.set()
                continue
            keep = self._kept(slot, tokens)
            llama_cpp.llama_memory_seq_rm(self.ctx.memory, slot.seq_id, keep, -1)
            slot.cached = tokens[:keep]
            slot.prompted = keep
            job.cached_tokens = keep
            if slot.limit <= 0:
                self._finish(slot, "length")

    def _placement(self, slot: Slot, tokens: list[int], running: list[int]) -> tuple[int, int, int]:
        """How well a free slot suits a prompt, as a sort key: first the prompt tokens whose KV it
        saves evaluating, then the fewest filler rows it makes every step carry (a request placed
        away from the running ones leaves streams between them that each step fills, see _fillers;
        measured: 4 clients on 8 slots got 124 tok/s in slots 0 and 5-7, fewer than 2 clients'
        141), then the least recently used. Without `invariant` every chat shares its template's
        first tokens with any slot that held a chat: fewer than TILE saved tokens count as none.
        `running`: the streams of the slots that have a request."""
        kept = self._kept(slot, tokens)
        busy = [*running, slot.seq_id]
        fillers = max(busy) - min(busy) + 1 - len(busy)
        return kept if self.invariant or kept >= TILE else 0, -fillers, -slot.used

    def _kept(self, slot: Slot, tokens: list[int]) -> int:
        """How many leading prompt tokens the slot keeps: the prefix it holds, but at least the
        last prompt token evaluated, in a whole piece."""
        return self._piece_start(min(self._reusable(slot, tokens), len(tokens) - 1), len(tokens))

    def _piece_start(self, keep: int, n: int) -> int:
        """Where the evaluation of a prompt of n tokens starts, given `keep` reusable ones (see the
        module's docstring): none of a short prompt, and at least TILE tokens of a longer one."""
        if not self.invariant:
            return keep
        return 0 if n < TILE else min(keep, n - TILE)

    def _reusable(self, slot: Slot, tokens: list[int]) -> int:
        """How many leading tokens of `tokens` the slot's KV stream holds in a form it may reuse."""
        common = _common(slot.cached, tokens)
        return min(common, slot.prompted) if self.invariant else common

    def _step(self) -> None:
        """One step: the next token of every generating sequence in one decode, then prompt pieces."""
        self._steps += 1
        generating, prompting = [], []
        for slot in self.slots:
            if slot.job is None:
                continue
            if slot.job.is_cancelled():
                self._finish(slot, "cancelled")
                continue
            slot.used = self._steps
            (generating if slot.next_token is not None else prompting).append(slot)
        if generating:
            self._decode([(slot, [slot.next_token], True) for slot in generating],
                         fillers=self._fillers(generating))
        budget = PROMPT_BUDGET
        for slot in prompting:
            # PIECE tokens, or the rest if fewer than PIECE + TILE are left, alone in its decode.
            start = len(slot.cached)
            left = len(slot.tokens) - start
            end = start + (left if left < PIECE + TILE else PIECE)
            if end - start > budget:
                break
            budget -= end - start
            self._decode([(slot, slot.tokens[start:end], end == len(slot.tokens))])
            # A short prompt's one piece went through the one-row kernel: not for reuse.
            slot.prompted = len(slot.cached) if len(slot.tokens) >= TILE or not self.invariant else 0

    def _fillers(self, generating: list[Slot]) -> list[tuple[int, int]]:
        """(stream, position) of the filler rows that make a step's rows one run of two or more
        consecutive streams (see the module's docstring)."""
        ids = {slot.seq_id for slot in generating}
        low, high = min(ids), max(ids)
        if low == high:
            # A lone sequence needs a neighbour only where flash attention would split its KV
            # (llama.cpp pads the cells it attends to to 256 and splits from 512); a filler row
            # costs a lone stream about a tenth of its speed, so short ones go alone.
            if not self.invariant or len(self.slots[low].cached) < LONE_CELLS:
                return []
            high = low + 1 if low + 1 < self.streams else low - 1
        # A stream holds at most n_ctx - 1 cells (a prompt leaves room for a token, whose last is never
        # decoded), so a filler's position is always inside it.
        return [(seq, len(self.slots[seq].cached) if seq < len(self.slots) else 0)
                for seq in range(min(low, high), max(low, high) + 1) if seq not in ids]

    def _decode(self, items: list[tuple[Slot, list[int], bool]], fillers: list[tuple[int, int]] = ()) -> None:
        """Evaluates tokens of some slots' sequences (each at the end of what its stream holds) and
        samples the next token of those whose last token wants it. Filler rows (stream, position)
        go in among them by stream, and their cells are removed afterwards."""
        rows, sampling = 0, []
        work = {slot.seq_id: (slot, tokens, logits) for slot, tokens, logits in items}
        fill = dict(fillers)
        for seq_id in sorted(work.keys() | fill.keys()):  # one ubatch needs them in stream order
            if seq_id in fill:  # any token, at the stream's next position, no logits
                self._row(rows, token=max(self.bos, 0), pos=fill[seq_id], seq_id=seq_id, logits=False)
                rows += 1
                continue
            slot, tokens, logits = work[seq_id]
            slot.next_token = None
            for i, token in enumerate(tokens):
                self._row(rows, token=token, pos=len(slot.cached), seq_id=seq_id,
                          logits=logits and i == len(tokens) - 1)
                slot.cached.append(token)
                rows += 1
            if logits:
                sampling.append((slot, rows - 1))
        self.batch.n_tokens = rows
        self.filler_rows += len(fillers)
        status = llama_cpp.llama_decode(self.ctx.ctx, self.batch)
        for seq_id, pos in fillers:
            llama_cpp.llama_memory_seq_rm(self.ctx.memory, seq_id, pos, -1)
        if status != 0:
            raise RuntimeError(f"llama_decode returned {status}")
        if sampling and self.head is not None and self.head.armed:
            self.head.logits(self.ctx.ctx, [row for _, row in sampling])
        for slot, row in sampling:
            if slot.sampler is None:  # greedy: the first token with the highest logit, as llama.cpp's
                # greedy sampler picks it, without copying the vocabulary's 262,144 candidates first
                # (measured: 1.1 ms a sequence a step, against 0.05 ms for this)
                logits = numpy.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(self.ctx.ctx, row),
                                                  shape=(self.n_vocab,))
                self._sampled(slot, int(logits.argmax()))
            else:
                self._sampled(slot, llama_cpp.llama_sampler_sample(slot.sampler.sampler, self.ctx.ctx, row))

    def _row(self, row: int, *, token: int, pos: int, seq_id: int, logits: bool) -> None:
        batch = self.batch
        batch.token[row], batch.pos[row], batch.logits[row] = token, pos, logits
        batch.n_seq_id[row] = 1
        batch.seq_id[row][0] = seq_id

    def _sampled(self, slot: Slot, token: int) -> None:
        job = slot.job
        if token in self.stop_ids:
            return self._finish(slot, "stop")
        slot.generated += 1
        text, stopped = slot.stops.feed(slot.decoder.decode(self._piece(token)))
        if text:
            job.on_token(text)
        if stopped:
            return self._finish(slot, "stop")
        if slot.generated >= slot.limit:
            return self._finish(slot, "length")
        slot.next_token = token

    def _piece(self, token: int) -> bytes:
        """The token's bytes as text (a special token, such as a stray turn marker, gives none)."""
        n = llama_cpp.llama_token_to_piece(self.model.vocab, token, self._piece_buffer, 256, 0, False)
        return self._piece_buffer.raw[:n] if n > 0 else b""

    def _finish(self, slot: Slot, finish: str = "", *, error: ApiError | None = None) -> None:
        job = slot.job
        if error is None and finish != "stop":
            rest, _ = slot.stops.feed(slot.decoder.decode(b"", final=True))
            rest += slot.stops.flush()
            if rest:
                job.on_token(rest)
        job.completion_tokens = slot.generated
        job.finish_reason = finish
        job.error = error
        slot.job = slot.sampler = None
        if error is not None:  # what the failed step left in the stream is unknown
            llama_cpp.llama_memory_seq_rm(self.ctx.memory, slot.seq_id, -1, -1)
            slot.cached, slot.prompted = [], 0
        job.done.set()


def _common(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _sampler(job: Job) -> LlamaSampler | None:
    """The request's own sampler chain: none for greedy (temperature 0: `Engine._decode` takes the
    highest logit itself), else top-k, top-p, temperature, seeded draw (llama.cpp's order)."""
    if job.temperature <= 0:
        return None
    sampler = LlamaSampler()
    if job.top_k > 0:
        sampler.add_top_k(job.top_k)
    sampler.add_top_p(job.top_p, 1)
    sampler.add_temp(job.temperature)
    sampler.add_dist(job.seed if job.seed is not None else random.getrandbits(31))
    return sampler

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
