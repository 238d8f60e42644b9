"""Shared reads of the registry."""

from registry.jobs import JOB_KINDS
from registry.models import Job


def jobs(*, recent: int = 20) -> tuple[list[Job], list[Job]]:
    """Background jobs (pulls and checks): those queued or running, oldest first, and the `recent`
    last finished, newest first."""
    active, finished = [], []
    for model in JOB_KINDS.values():
        rows = model.objects.select_related("requested_by")
        if hasattr(model, "version"):
            rows = rows.select_related("version__model")
        active += rows.filter(status__in=(Job.QUEUED, Job.RUNNING))
        finished += rows.exclude(status__in=(Job.QUEUED, Job.RUNNING))[:recent]
    active.sort(key=lambda job: job.created_at)
    finished.sort(key=lambda job: job.created_at, reverse=True)
    return active, finished[:recent]
