"""Shared reads of the registry."""

from core.memo import Memo
from registry.jobs import JOB_KINDS
from registry.models import Job, Model

_models = Memo()


def model_by_name(name: str) -> Model | None:
    """The model with its active version (None if it has none); a copy kept by this process
    (core.memo), to be read, not changed."""
    return _models.get(name, lambda: Model.objects.select_related("active_version").filter(name=name).first())


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
