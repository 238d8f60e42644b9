"""Memory of worker processes serving one model: the PSS of one worker against two (each with the
model loaded; the weights are mmapped, so the second shares the first's pages). Goal: 2 workers
<= 1.35x the PSS of one.

    .venv/bin/python bench/memory.py [--threads 2]
"""

import argparse
import subprocess
import time

from harness import lanthorn, load


def pss_kb(pid: int) -> int:
    """PSS of the process and its children (`lanthorn worker` execs Celery in place)."""
    pids = [pid, *map(int, subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split())]
    total = 0
    for p in pids:
        with open(f"/proc/{p}/smaps_rollup") as f:
            total += sum(int(line.split()[1]) for line in f if line.startswith("Pss:"))
    return total


def workers_pss(workers: int, threads: int) -> int:
    with lanthorn(threads=threads, workers=workers, max_workers=workers, cache=False) as server:
        deadline = time.monotonic() + 120
        while not all(_loaded(pid) for pid in server.workers):  # workers load their models at start
            assert time.monotonic() < deadline, "the workers did not load the model in 120 s"
            time.sleep(0.5)
        return sum(pss_kb(pid) for pid in server.workers)


def _loaded(pid: int) -> bool:
    with open(f"/proc/{pid}/maps") as f:
        return "sha256-" in f.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    one = workers_pss(1, args.threads)
    two = workers_pss(2, args.threads)
    print(f"Gemma 3 270M Q4_K_M, workers with the model loaded ({load()})")
    print(f"PSS one worker {one / 1024:.0f} MB   two workers {two / 1024:.0f} MB   ratio {two / one:.2f}x   (goal <= 1.35x)")


if __name__ == "__main__":
    main()
