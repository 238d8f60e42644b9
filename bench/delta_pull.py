"""What a differential pull saves: the default model re-released with only its metadata changed
(a chat template added, which shifts every byte after the header), pulled from another Lanthorn
by a store that holds the old release, against a full pull of the same file into an empty store.

A second Lanthorn (its own home, database and server, set up with `lanthorn setup` and
`lanthorn import`) serves version 1 (the default model) and version 2 (the fixed template).
This process pulls `lanthorn://…/gemma3-270m:2` with the same code a worker runs
(registry.services.run_pull), alternating differential and full pulls. Target: bytes
transferred by the differential pull ≤ 2 % of the file.

    .venv/bin/python bench/delta_pull.py [--runs 3]
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lanthorn import redis_server  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="lanthorn-bench-delta-"))
    procs = []
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    if not redis_server.ping(redis_url):
        proc, redis_url = redis_server.start_private(work / "redis")
        procs.append(proc)
    os.environ.update(LANTHORN_HOME=str(work / "local"), DATABASE_URL=f"sqlite:///{work / 'local.sqlite3'}",
                      REDIS_URL=redis_url, DJANGO_SETTINGS_MODULE="lanthorn.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from lanthorn import processes
    from registry import services
    from registry.models import Pull
    from tests.registry.peer import start_peer

    call_command("migrate", verbosity=0)
    print("Setting up the second Lanthorn (v1: default model, v2: same file with a chat template) ...")
    peer = start_peer(work / "peer", redis_url=redis_url)
    try:
        source = f"lanthorn://{peer.address}/gemma3-270m:2"
        local = Path(settings.LANTHORN_HOME)
        settings.LANTHORN_HOME = local
        services.install_default_model()  # the store holds version 1, as after `make run`

        def pull(name: str) -> tuple[float, Pull]:
            start = time.perf_counter()
            job = services.run_pull(pull_id=services.start_pull(source=source, name=name, enqueue=False).pk,
                                    remote_key=peer.key)
            elapsed = time.perf_counter() - start
            if job.status != Pull.DONE:
                raise SystemExit(f"pull failed: {job.error}")
            return elapsed, job

        rows = []
        for run in range(args.runs):
            settings.LANTHORN_HOME = local
            diff_time, diff = pull("gemma3-270m")
            services.rollback(name="gemma3-270m", number=1)
            services.remove(name="gemma3-270m", number=diff.version.number)  # and its blob, for the next run
            fresh = work / f"fresh-{run}"
            settings.LANTHORN_HOME = fresh
            full_time, full = pull(f"full-{run}")
            services.remove(name=f"full-{run}", force=True)  # so the next differential run starts as this one
            shutil.rmtree(fresh)
            size = diff.version.size
            rows.append((diff.transferred_bytes, size, diff_time, full.transferred_bytes, full_time))
            print(f"run {run + 1}: differential {diff.transferred_bytes / 1e6:7.2f} MB in {diff_time:5.2f} s | "
                  f"full {full.transferred_bytes / 1e6:7.2f} MB in {full_time:5.2f} s")
    finally:
        peer.stop()
        processes.stop(procs)
        shutil.rmtree(work, ignore_errors=True)

    share = statistics.median(r[0] / r[1] for r in rows)
    diff_time = statistics.median(r[2] for r in rows)
    full_time = statistics.median(r[4] for r in rows)
    print()
    print(f"file size:                         {rows[0][1] / 1e6:.1f} MB")
    print(f"differential pull transferred:     {statistics.median(r[0] for r in rows) / 1e6:.2f} MB "
          f"= {share * 100:.2f} % of the file (target <= 2 %)")
    print(f"full pull transferred:             {statistics.median(r[3] for r in rows) / 1e6:.2f} MB")
    print(f"wall time, differential / full:    {diff_time:.2f} s / {full_time:.2f} s "
          f"= {diff_time / full_time:.2f}")
    print(f"RESULT bytes_share={share:.4f} time_ratio={diff_time / full_time:.3f}")


if __name__ == "__main__":
    main()
