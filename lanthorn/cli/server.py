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
    from lanthorn.celery import JOBS_QUEUE
    from registry.models import Model

    if args.jobs:  # background jobs (pulls, checks): a pool of their own, no model loaded
        queues, name = JOBS_QUEUE, "lanthorn-jobs"
    else:
        queues, name = ",".join(["lanthorn", *(m.queue for m in Model.objects.all())]), "lanthorn"
    os.execv(sys.executable, [sys.executable, "-m", "celery", "-A", "lanthorn", "worker",
                              "--pool", "threads", "--concurrency", str(args.concurrency),
                              "--queues", queues, "--loglevel", args.loglevel,
                              "--hostname", f"{name}-{os.getpid()}@%h", "--without-gossip",
                              "--without-mingle"])


def register(sub) -> None:
    sub.add_parser("run", help="set up and run server, worker and Redis").set_defaults(func=cmd_run, django=False)
    sub.add_parser("setup", help="migrate, create the admin user, install the default model").set_defaults(func=cmd_setup)
    w = sub.add_parser("worker", help="run an inference worker (--jobs: the worker of pulls and checks)")
    w.add_argument("--concurrency", type=int, default=4)
    w.add_argument("--jobs", action="store_true", help="run background jobs (pulls, checks) instead of models")
    w.add_argument("--loglevel", default="INFO")
    w.set_defaults(func=cmd_worker)
