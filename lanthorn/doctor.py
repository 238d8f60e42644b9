"""`lanthorn doctor`: the troubleshooting table, checked on this host. Each check says what it
found and, when it fails, what to do about it.

Every check is a function returning Checks; what a check reads from the machine (CPU flags,
memory, encodings, the build stamp) it takes as keyword arguments with the real values as
defaults, so that each verdict can be tried on other values.
"""

import locale
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
from django.conf import settings

MIN_LOAD_RATE = 200e6  # bytes/s: below this, a 4 GB model takes over 20 s to load (an SSD reads 500+)
SAMPLE_BYTES = 256 * 1024 * 1024  # read at most this much of a model file to time the storage
MIN_FREE_BYTES = 1e9


@dataclass
class Check:
    name: str
    ok: bool
    message: str
    fix: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def _redacted(url: str) -> str:
    """A Redis URL without its password."""
    from lanthorn.redis_server import masked

    return masked(url)


# The port.

def check_port(*, host: str | None = None, port: int | None = None) -> list[Check]:
    host = host or settings.LANTHORN_HOST
    port = port or settings.LANTHORN_PORT
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return [Check("port", True, f"port {port} on {host} is free for Lanthorn")]
        except OSError:
            pass
    try:
        answer = httpx.get(f"http://{host}:{port}/healthz", timeout=2).json()
        if answer.get("status") == "ok":
            return [Check("port", True, f"Lanthorn answers on port {port} of {host}")]
    except (httpx.HTTPError, ValueError, AttributeError):
        pass
    return [Check("port", False, f"port {port} on {host} is in use by another program",
                  f"set LANTHORN_PORT to a free port (e.g. LANTHORN_PORT={port + 1} make run), or stop "
                  f"the program on it (`ss -ltnp 'sport = :{port}'` names it)")]


# The database.

def check_database() -> list[Check]:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    try:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception:
        return [Check("database", False, f"the database ({connection.settings_dict['ENGINE'].rsplit('.', 1)[-1]}) "
                      f"does not answer", "check DATABASE_URL and that the database server runs")]
    if pending:
        return [Check("database", False, f"{len(pending)} migrations are not applied",
                      "run `lanthorn setup` (`make run` does it)")]
    return [Check("database", True, "the database answers and is migrated")]


# Redis and the workers.

def _redis_answers() -> bool:
    from lanthorn.redis_server import ping

    return ping(settings.REDIS_URL)


def check_redis() -> list[Check]:
    from core.workers import installation_id, workers

    url = _redacted(settings.REDIS_URL)
    if not _redis_answers():
        return [Check("redis", False, f"Redis at {url} does not answer",
                      "start Redis (`make run` starts a private one when none answers), or set REDIS_URL "
                      "to a Redis that runs (redis://[:PASSWORD@]HOST:PORT/DB)")]
    mine = installation_id()
    strangers = sorted(w["name"] for w in workers() if w.get("installation") not in (None, mine))
    if strangers:
        return [Check("redis", False, f"Redis at {url} is shared with another installation: workers "
                      f"{', '.join(strangers)} use another database, and would take this one's requests",
                      "give each installation a Redis database of its own: REDIS_URL=redis://HOST:PORT/N "
                      "with an N no other installation uses")]
    return [Check("redis", True, f"Redis at {url} answers and serves this installation only")]


def check_workers() -> list[Check]:
    from core.workers import INFERENCE, live_workers, serving
    from registry.models import Model

    if not _redis_answers():
        return [Check("workers", False, "cannot tell: Redis does not answer", "see the redis check")]
    inference = live_workers(kind=INFERENCE)
    if not inference:
        return [Check("workers", False, "no inference worker is running: no request can be answered",
                      "start one: `lanthorn worker` (all models) or `lanthorn worker --models NAME`; "
                      "`make run` starts one")]
    found = [Check("workers", True, f"{len(inference)} inference worker(s) running")]
    for name in Model.objects.filter(active_version__isnull=False).values_list("name", flat=True):
        if serving(model=name):
            found.append(Check(f"worker for {name}", True, f"a live worker serves {name}"))
        else:
            found.append(Check(f"worker for {name}", False, f"no live worker serves {name}: its requests "
                               f"get 503 model_unavailable",
                               f"start one on a host that reaches this Redis and database: "
                               f"`lanthorn worker --models {name}`"))
    return found


def check_queues(*, backlog: int | None = None) -> list[Check]:
    from core.redis import redis_client
    from registry.models import Model

    backlog = settings.LANTHORN_QUEUE_BACKLOG if backlog is None else backlog
    if not _redis_answers():
        return [Check("queues", False, "cannot tell: Redis does not answer", "see the redis check")]
    names = list(Model.objects.values_list("name", flat=True))
    pipe = redis_client().pipeline(transaction=False)
    for name in names:
        pipe.llen(f"model.{name}")
    waiting = {name: n for name, n in zip(names, pipe.execute()) if n > backlog}
    if not waiting:
        return [Check("queues", True, f"no model has more than {backlog} requests waiting")]
    return [Check(f"queue of {name}", False, f"{n} requests wait for {name} (more than {backlog})",
                  f"give it more slots (`lanthorn worker --models {name} --slots N`) or more workers "
                  f"(the same command on another host)") for name, n in waiting.items()]


# Storage.

def check_disk(*, free: int | None = None) -> list[Check]:
    from registry import blobstore
    from registry.models import ModelVersion

    directory = blobstore.blobs_dir()
    free = blobstore.free_bytes() if free is None else free
    largest = max(ModelVersion.objects.values_list("size", flat=True), default=0)
    needed = max(MIN_FREE_BYTES, largest)
    if free < needed:
        return [Check("disk", False, f"{free / 1e9:.1f} GB free for the blob store ({directory}); a pull of "
                      f"a model like the largest held needs {needed / 1e9:.1f} GB",
                      "free space there: `lanthorn gc` removes files no version uses, `lanthorn rm "
                      "NAME:VERSION` old versions; or move LANTHORN_HOME to a larger disk")]
    return [Check("disk", True, f"{free / 1e9:.1f} GB free for the blob store ({directory})")]


def _read_rate(path: Path) -> float:
    """Bytes per second reading the start of `path`, from the disk rather than the page cache
    where the kernel lets us drop it."""
    with open(path, "rb", buffering=0) as f:
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        started, total = time.perf_counter(), 0
        while total < SAMPLE_BYTES:
            block = f.read(8 * 1024 * 1024)
            if not block:
                break
            total += len(block)
    return total / max(time.perf_counter() - started, 1e-9)


def check_storage(*, rate: float | None = None) -> list[Check]:
    from registry.models import ModelVersion

    if rate is None:
        version = ModelVersion.objects.order_by("-size").first()
        if version is None or not version.path.is_file():
            return [Check("storage", True, "no model file to time the storage with")]
        rate = _read_rate(version.path)
    if rate < MIN_LOAD_RATE:
        return [Check("storage", False, f"the blob store reads at {rate / 1e6:.0f} MB/s: loading a model will "
                      f"be slow (a spinning disk or a network share?)",
                      "keep LANTHORN_HOME (its blobs/) on a local SSD")]
    return [Check("storage", True, f"the blob store reads at {rate / 1e6:.0f} MB/s")]


# This host.

def check_encoding(*, preferred: str | None = None, terminal: str | None = None) -> list[Check]:
    preferred = preferred or locale.getpreferredencoding(False)
    terminal = terminal or getattr(sys.stdout, "encoding", None) or preferred
    bad = [f"{what} is {name}" for what, name in (("the locale's encoding", preferred),
                                                   ("the terminal's", terminal))
           if name.lower().replace("-", "").replace("_", "") != "utf8"]
    if bad:
        return [Check("encoding", False, f"{' and '.join(bad)}, not UTF-8: Chinese and other non-ASCII "
                      f"answers print garbled", "export LANG=C.UTF-8 LC_ALL=C.UTF-8 (or another UTF-8 "
                      "locale) and set the terminal's character set to UTF-8")]
    return [Check("encoding", True, "locale and terminal use UTF-8")]


def _meminfo() -> dict[str, int]:
    found = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, value = line.partition(":")
            found[key] = int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return found


def model_memory(*, model) -> int:
    """Bytes a model needs loaded: its file plus the KV cache of its context."""
    from registry.gguf_info import kv_cache_bytes_per_token

    version = model.active_version
    return version.size + model.n_ctx * kv_cache_bytes_per_token(version.path)


def check_memory(*, available: int | None = None) -> list[Check]:
    from registry.models import Model

    available = _meminfo().get("MemAvailable", 0) if available is None else available
    found = []
    for model in Model.objects.select_related("active_version").filter(active_version__isnull=False):
        if not model.active_version.path.is_file():
            continue  # the integrity check says so
        need = model_memory(model=model)
        if need > available:
            found.append(Check(f"memory for {model.name}", False,
                               f"{model.name} needs about {need / 1e9:.2f} GB (file and a {model.n_ctx}-token "
                               f"context), {available / 1e9:.2f} GB are available",
                               f"lower its context (`lanthorn config {model.name} --set n_ctx=2048`), use a "
                               f"smaller quantization, or serve it from a host with more memory"))
        else:
            found.append(Check(f"memory for {model.name}", True,
                               f"{model.name} needs about {need / 1e9:.2f} GB, {available / 1e9:.2f} GB available"))
    return found or [Check("memory", True, "no active model")]


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def _build_stamp() -> str | None:
    """The flags scripts/install-llama-cpp.sh built llama-cpp-python with (None: not built by it)."""
    try:
        return (Path(sys.prefix) / ".llama-cpp-python").read_text().strip()
    except OSError:
        return None


# What a -DGGML_X=ON build needs from the CPU.
BUILD_NEEDS = {"AVX": "avx", "AVX2": "avx2", "FMA": "fma", "F16C": "f16c", "AVX512": "avx512f"}


_READ = object()


def check_cpu(*, flags: set[str] | None = None, stamp=_READ) -> list[Check]:
    """`stamp`: the build flags stamp's text, None for no stamp (default: read it)."""
    flags = _cpu_flags() if flags is None else flags
    stamp = _build_stamp() if stamp is _READ else stamp
    rebuild = "rebuild it for this CPU: rm .venv/.llama-cpp-python && scripts/install-llama-cpp.sh .venv"
    has = [name for name in ("avx2", "avx512f", "amx_tile") if name in flags]
    if stamp is None:
        if any(f.startswith("amx") for f in flags):
            return [Check("cpu", False, "this CPU has AMX and llama-cpp-python was not built by "
                          "scripts/install-llama-cpp.sh: a default build's AMX kernels crash in llama_decode "
                          "on such CPUs", rebuild)]
        return [Check("cpu", True, f"CPU features: {', '.join(has) or 'baseline x86-64'}; llama-cpp-python "
                      f"is not Lanthorn's build (no .venv/.llama-cpp-python)")]
    words = stamp.split()
    on = {w[len("-DGGML_"):-len("=ON")] for w in words if w.startswith("-DGGML_") and w.endswith("=ON")}
    missing = sorted(name for name in on if name in BUILD_NEEDS and BUILD_NEEDS[name] not in flags)
    if missing:
        return [Check("cpu", False, f"llama-cpp-python was built with {', '.join(missing)}, which this CPU lacks: "
                      f"it will stop with an illegal instruction", rebuild)]
    amx_off = all(f"-DGGML_AMX_{kind}=OFF" in words for kind in ("TILE", "INT8", "BF16"))
    if not amx_off and any(f.startswith("amx") for f in flags):
        return [Check("cpu", False, "llama-cpp-python was built with AMX kernels, which crash in llama_decode "
                      "on this CPU", rebuild)]
    cuda = ", with CUDA" if "CUDA" in on else ""
    return [Check("cpu", True, f"CPU features: {', '.join(has) or 'baseline x86-64'}; llama-cpp-python "
                  f"{words[0] if words else ''} was built for them ({len(on & BUILD_NEEDS.keys())} "
                  f"extensions on, AMX off{cuda})")]


# The models.

def check_integrity() -> list[Check]:
    from registry.gguf_info import check_structure
    from registry.models import Model

    found = []
    for model in Model.objects.select_related("active_version").filter(active_version__isnull=False):
        version = model.active_version
        fix = (f"`lanthorn check {version.label}` re-hashes it; pull the model again, or `lanthorn rollback "
               f"{model.name}` to an earlier version")
        path = version.path
        if not path.is_file():
            problem = f"its file is missing from {path.parent}"
        elif path.stat().st_size != version.size:
            problem = f"its file has {path.stat().st_size:,} bytes, not {version.size:,}"
        else:
            problems = check_structure(path)
            problem = problems[0] if problems else version.check_problem
        if problem:
            found.append(Check(f"integrity of {version.label}", False, problem, fix))
        else:
            found.append(Check(f"integrity of {version.label}", True, "file present, size and GGUF structure "
                               "right"))
    return found or [Check("integrity", True, "no active model")]


CHECKS = {
    "database": check_database, "port": check_port, "redis": check_redis, "workers": check_workers, "queues": check_queues,
    "disk": check_disk, "storage": check_storage, "encoding": check_encoding, "memory": check_memory,
    "cpu": check_cpu, "integrity": check_integrity,
}


NEED_DATABASE = {"workers", "queues", "disk", "storage", "memory", "integrity"}


def run_checks(*, only: list[str] | None = None) -> list[Check]:
    """The checks named in `only` (all by default), in the table's order."""
    found = []
    database_ready = True
    for name, check in CHECKS.items():
        if only and name not in only:
            continue
        if not database_ready and name in NEED_DATABASE:
            found.append(Check(name, False, "cannot tell: the database is not ready", "see the database check"))
            continue
        try:
            found.extend(check())
        except Exception as exc:  # a check that breaks is a finding too, never the end of the report
            found.append(Check(name, False, f"the check itself failed: {type(exc).__name__}: {exc}",
                               "report this; the other checks still ran"))
        if name == "database":
            database_ready = found[-1].ok
    return found
