"""`lanthorn run`, `lanthorn setup` and `lanthorn worker`: the processes."""

import os
import sys


def cmd_run(args) -> None:
    from lanthorn import launcher

    launcher.main()


def cmd_setup(args) -> None:
    from lanthorn.launcher import setup

    password = setup()
    print(f"Admin login: admin / {password}" if password else "Set up; the admin user exists already.")


def cmd_worker(args) -> None:
    """A worker for every model (and the pulls), or with --models for those models only: it gets
    their files (from LANTHORN_PEER when its blob store lacks them), loads them and takes only
    their requests. Any host that reaches the same Redis and database can run one."""
    from django.conf import settings

    from lanthorn.cli.base import CommandError
    from registry.models import Model

    names = [n.strip() for n in (args.models or "").split(",") if n.strip()] or settings.LANTHORN_WORKER_MODELS
    if names:
        unknown = sorted(set(names) - set(Model.objects.filter(name__in=names).values_list("name", flat=True)))
        if unknown:
            raise CommandError(f"no model named {', '.join(unknown)} (`lanthorn list` shows the models)")
        queues = ",".join(Model(name=n).queue for n in names)
    else:
        queues = ",".join(["lanthorn", *(m.queue for m in Model.objects.all())])
    os.environ["LANTHORN_WORKER_MODELS"] = ",".join(names)
    os.execv(sys.executable, [sys.executable, "-m", "celery", "-A", "lanthorn", "worker",
                              "--pool", "threads", "--concurrency", str(args.slots),
                              "--queues", queues, "--loglevel", args.loglevel,
                              "--hostname", f"lanthorn-{os.getpid()}@%h", "--without-gossip",
                              "--without-mingle"])


def register(sub) -> None:
    sub.add_parser("run", help="set up and run server, worker and Redis").set_defaults(func=cmd_run, django=False)
    sub.add_parser("setup", help="migrate, create the admin user, install the default model").set_defaults(func=cmd_setup)
    w = sub.add_parser("worker", help="run an inference worker")
    w.add_argument("--models", help="serve only these models (comma-separated); default: every model")
    w.add_argument("--slots", "--concurrency", type=int, default=4,
                   help="requests this worker takes at once (default 4)")
    w.add_argument("--loglevel", default="INFO")
    w.set_defaults(func=cmd_worker)
