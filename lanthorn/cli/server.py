"""`lanthorn run`, `lanthorn setup` and `lanthorn worker`: the processes."""

import os
import sys

JOBS_SLOTS = 4  # the jobs a jobs worker runs at once (pulls, checks)


def cmd_run(args) -> None:
    from lanthorn import launcher

    launcher.main()


def cmd_setup(args) -> None:
    from lanthorn.launcher import setup

    if args.clear_metrics:  # before the installation's other processes start (compose's `init`)
        from django.conf import settings

        from lanthorn.processes import clear_metrics

        clear_metrics(settings.PROMETHEUS_MULTIPROC_DIR)
    password = setup()
    print(f"Admin login: admin / {password}" if password else "Set up; the admin user exists already.")


def cmd_web(args) -> None:
    """The web process alone (HTTP and WebSocket): stateless, run as many as you like behind a proxy."""
    from django.conf import settings

    os.execv(sys.executable, [sys.executable, "-m", "uvicorn", "lanthorn.asgi:application",
                              "--host", args.host or settings.LANTHORN_HOST,
                              "--port", str(args.port or settings.LANTHORN_PORT), "--no-access-log",
                              "--workers", str(settings.LANTHORN_WEB_PROCESSES)])


def worker_healthcheck() -> None:
    """Exit status 0 when a worker on this host sends heartbeats (a container's health check)."""
    import socket

    from core.workers import workers

    if not any(w.get("host") == socket.gethostname() for w in workers()):
        sys.exit(1)


def worker_environment(*, jobs: bool) -> dict:
    """What `lanthorn worker` adds to the environment of the Celery worker it becomes. Django's
    system checks, which load every template library (DRF's pull in its renderers, requests and
    pygments: 8 MB in each worker, which serves no page), are skipped: `lanthorn setup` and `run`
    run them. A model worker imports inference's tasks alone (lanthorn/celery.py)."""
    return {"CELERY_SKIP_CHECKS": "1", "LANTHORN_MODEL_WORKER": "false" if jobs else "true"}


def cmd_worker(args) -> None:
    """A worker for every model, or with --models for those models only: it gets their files (from
    LANTHORN_PEER when its blob store lacks them), loads them and takes only their requests; with
    --jobs, the worker of background jobs (pulls, checks), which loads no model. Any host that
    reaches the same Redis and database can run one."""
    from django.conf import settings

    from lanthorn.celery import JOBS_QUEUE
    from lanthorn.cli.base import CommandError
    from registry.models import Model

    if args.healthcheck:
        return worker_healthcheck()
    if args.jobs:  # background jobs (pulls, checks): a pool of their own, no model loaded
        if args.models:
            raise CommandError("--jobs and --models do not go together: a jobs worker serves no model")
        queues, name, names = JOBS_QUEUE, "lanthorn-jobs", []
        slots = args.slots or JOBS_SLOTS
    else:
        names = [n.strip() for n in (args.models or "").split(",") if n.strip()] or settings.LANTHORN_WORKER_MODELS
        if names:
            unknown = sorted(set(names) - set(Model.objects.filter(name__in=names).values_list("name", flat=True)))
            if unknown:
                raise CommandError(f"no model named {', '.join(unknown)} (`lanthorn list` shows the models)")
            models = list(Model.objects.filter(name__in=names))
            queues = ",".join(m.queue for m in models)
        else:
            # Worker `index` serves the models that want more than `index` workers; worker 0 also
            # takes the default queue.
            models = [m for m in Model.objects.all() if m.max_workers > args.index]
            queues = ",".join(["lanthorn", *(m.queue for m in models)] if args.index == 0 else
                              [m.queue for m in models] or ["lanthorn"])
        # A request holds its Celery thread while its model's engine batches it: one thread per
        # slot, and two for other tasks.
        slots = args.slots or sum(m.slots for m in models) + 2
        name = "lanthorn"
    os.environ["LANTHORN_WORKER_MODELS"] = ",".join(names)
    os.environ["LANTHORN_WORKER_INDEX"] = str(args.index)
    os.environ.update(worker_environment(jobs=args.jobs))
    os.execv(sys.executable, [sys.executable, "-m", "celery", "-A", "lanthorn", "worker",
                              "--pool", "threads", "--concurrency", str(slots),
                              "--queues", queues, "--loglevel", args.loglevel,
                              "--hostname", f"{name}-{os.getpid()}@%h", "--without-gossip",
                              "--without-mingle"])


def register(sub) -> None:
    sub.add_parser("run", help="set up and run server, worker and Redis").set_defaults(func=cmd_run, django=False)
    s = sub.add_parser("setup", help="migrate, create the admin user, install the default model")
    s.add_argument("--clear-metrics", action="store_true",
                   help="empty PROMETHEUS_MULTIPROC_DIR first (only before the other processes start)")
    s.set_defaults(func=cmd_setup)
    web = sub.add_parser("web", help="run the web process alone (LANTHORN_HOST, LANTHORN_PORT)")
    web.add_argument("--host")
    web.add_argument("--port", type=int)
    web.set_defaults(func=cmd_web)
    w = sub.add_parser("worker", help="run an inference worker (--jobs: the worker of pulls and checks)")
    w.add_argument("--models", help="serve only these models (comma-separated); default: every model")
    w.add_argument("--jobs", action="store_true", help="run background jobs (pulls, checks) instead of models")
    w.add_argument("--slots", "--concurrency", type=int, default=None,
                   help=f"requests this worker takes at once (default: its models' slots, plus 2; "
                        f"with --jobs, the jobs it runs at once, default {JOBS_SLOTS})")
    w.add_argument("--index", type=int, default=0, help="which of a model's max_workers this is")
    w.add_argument("--loglevel", default="INFO")
    w.add_argument("--healthcheck", action="store_true",
                   help="exit 0 when a worker on this host sends heartbeats, else 1 (for container health checks)")
    w.set_defaults(func=cmd_worker)
