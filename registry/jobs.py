"""Background jobs (pulls, checks) as they run: progress, log and cancel, written to the job's row.

A job's code reports through a `JobReporter`; every write of its progress (at most every half
second, between chunks) is also where it learns that someone pressed Cancel: the write matches
no row once `cancel_requested` is set, and the reporter raises `JobCancelled`, which the job
catches to stop cleanly. The worker's heartbeat says which jobs it is running (`status`).
"""

import threading
import time

from django.db import transaction
from django.utils import timezone

from registry import sources
from registry.models import Check, Job, Pull

JOB_KINDS = {cls.KIND: cls for cls in (Pull, Check)}
LOG_LINES = 200  # a job keeps the last this many lines of its log

_running: dict[str, str] = {}  # job id → title, in this process


class JobCancelled(Exception):
    """Someone pressed Cancel: the job stops where it is."""


def status() -> dict:
    """What a jobs worker is doing, for its heartbeat."""
    jobs = sorted(_running.values())
    return {"state": "running" if jobs else "idle", "jobs": jobs}


class running:
    """`with running(job):` marks the job as this process's for the heartbeat, and keeps its row
    alive through long steps without progress (hashing, chunking, pip), so it does not look abandoned."""

    EVERY = 10.0

    def __init__(self, job: Job):
        self.job = job
        self.stopped = threading.Event()

    def __enter__(self):
        _running[str(self.job.pk)] = self.job.title
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        from django.db import connection

        model = type(self.job)
        try:
            while not self.stopped.wait(self.EVERY):
                model.objects.filter(pk=self.job.pk, status=Job.RUNNING).update(updated_at=timezone.now())
        finally:
            connection.close()

    def __exit__(self, *exc):
        self.stopped.set()
        self.thread.join()
        _running.pop(str(self.job.pk), None)


class JobReporter(sources.Reporter):
    """Writes a job's progress to its row, at most every half second, and raises JobCancelled
    from that write once Cancel was pressed."""

    EVERY = 0.5

    def __init__(self, job: Job):
        self.job = job
        self.last_write = 0.0
        self.window: list[tuple[float, int]] = [(time.monotonic(), 0)]
        self.fields = ["phase", "total_bytes", "done_bytes", "rate", "log"]
        if isinstance(job, Pull):
            self.fields.append("transferred_bytes")

    def phase(self, text: str) -> None:
        self.job.phase = text[:200]
        self.log(text)
        self.save(force=True)

    def log(self, text: str) -> None:
        lines = (self.job.log.splitlines() + [f"{timezone.now():%H:%M:%S} {text}"])[-LOG_LINES:]
        self.job.log = "\n".join(lines)

    def start(self, *, total: int | None, done: int = 0) -> None:
        self.job.total_bytes, self.job.done_bytes = total, done
        self.save()

    def advance(self, n: int, *, transferred: bool = True) -> None:
        self.job.done_bytes += n
        if transferred and isinstance(self.job, Pull):
            self.job.transferred_bytes += n
        self.save()

    def save(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_write < self.EVERY:
            return
        self.window.append((now, self.job.done_bytes))
        self.window = [w for w in self.window if now - w[0] <= 5] or self.window[-1:]
        t0, d0 = self.window[0]
        self.job.rate = (self.job.done_bytes - d0) / (now - t0) if now > t0 else 0.0
        self.last_write = now
        values = {field: getattr(self.job, field) for field in self.fields}
        if not type(self.job).objects.filter(pk=self.job.pk, cancel_requested=False).update(
                **values, updated_at=timezone.now()):
            raise JobCancelled()


def begin(job: Job, *, worker: str) -> bool:
    """Marks a queued job running in `worker`; False if it was cancelled (or given up on) first."""
    started = type(job).objects.filter(pk=job.pk, status=Job.QUEUED, cancel_requested=False).update(
        status=Job.RUNNING, phase="starting", worker=worker, updated_at=timezone.now())
    if started:
        job.status, job.phase, job.worker = Job.RUNNING, "starting", worker
    return bool(started)


def end(job: Job, reporter: JobReporter, *, status: str, phase: str, error: str = "") -> None:
    """Records how a job ended (its log says so too)."""
    job.status, job.phase, job.error = status, phase, error
    reporter.log(f"{phase}: {error}" if error else phase)
    job.rate, job.finished_at = 0.0, timezone.now()
    job.save()


def cancel(*, job: Job) -> Job:
    """A queued job is cancelled at once; a running one stops at its next chunk (its worker marks it
    cancelled). A finished job stays as it is."""
    model = type(job)
    with transaction.atomic():
        if not model.objects.filter(pk=job.pk, status=Job.QUEUED).update(
                status=Job.CANCELLED, phase="cancelled", cancel_requested=True, finished_at=timezone.now()):
            model.objects.filter(pk=job.pk, status=Job.RUNNING).update(cancel_requested=True)
    job.refresh_from_db()
    return job


def settle(job: Job) -> Job:
    """A job that lost its worker (or that no worker took up) is marked failed, saying so."""
    from redis.exceptions import RedisError

    from core.workers import worker_alive

    def alive(worker: str) -> bool:
        try:
            return worker_alive(worker=worker)
        except RedisError:
            return True  # Redis cannot tell

    if job.is_stale or (job.status == Job.RUNNING and job.worker and not alive(job.worker)):
        job.status, job.phase = Job.FAILED, "failed"
        job.error = (f"the {job.KIND} stopped: its worker went away."
                     + (" Pull again to resume from the bytes on disk." if isinstance(job, Pull) else "")
                     if job.started else "no worker took the job up: is a jobs worker running?")
        job.finished_at = timezone.now()
        job.save()
    return job
