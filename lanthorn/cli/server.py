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
    from registry.models import Model

    # Worker `index` serves the models that want more than `index` workers; worker 0 also pulls.
    models = [m for m in Model.objects.all() if m.max_workers > args.index]
    queues = ",".join(["lanthorn", *(m.queue for m in models)] if args.index == 0 else
                      [m.queue for m in models] or ["lanthorn"])
    # A request holds its Celery thread while its model's engine batches it: one thread per slot,
    # and two for pulls and other jobs.
    concurrency = args.concurrency or sum(m.slots for m in models) + 2
    os.environ["LANTHORN_WORKER_INDEX"] = str(args.index)
    os.execv(sys.executable, [sys.executable, "-m", "celery", "-A", "lanthorn", "worker",
                              "--pool", "threads", "--concurrency", str(concurrency),
                              "--queues", queues, "--loglevel", args.loglevel,
                              "--hostname", f"lanthorn-{os.getpid()}@%h", "--without-gossip",
                              "--without-mingle"])


def register(sub) -> None:
    sub.add_parser("run", help="set up and run server, worker and Redis").set_defaults(func=cmd_run, django=False)
    sub.add_parser("setup", help="migrate, create the admin user, install the default model").set_defaults(func=cmd_setup)
    w = sub.add_parser("worker", help="run an inference worker")
    w.add_argument("--concurrency", type=int, default=None,
                   help="Celery threads (default: the slots of the models it serves, plus 2)")
    w.add_argument("--index", type=int, default=0, help="which of a model's max_workers this is")
    w.add_argument("--loglevel", default="INFO")
    w.set_defaults(func=cmd_worker)
