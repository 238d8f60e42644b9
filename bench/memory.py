"""Memory of worker processes serving one model: the PSS of one worker against two (each with the
model loaded; the weights are mmapped, so the second shares the first's pages). Goal: 2 workers
<= 1.35x the PSS of one.

    .venv/bin/python bench/memory.py [--threads 2] [--n-ctx N] [--slots N]

Each worker also has its own KV cache (n_ctx x slots cells), which no mmap can share: llama.cpp
clears it at load, and the engine gives its zero pages back (inference/pages.py), so a worker holds
only the cells its requests have filled. The bench prints the weights' part apart from the rest.
"""

import argparse
import subprocess
import time

from harness import lanthorn, load


def with_children(pid: int) -> list[int]:
    """The process and its children (`lanthorn worker` execs Celery in place: usually none)."""
    return [pid, *map(int, subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split())]


def pss_kb(pid: int) -> int:
    """PSS of the process and its children."""
    total = 0
    for p in with_children(pid):
        with open(f"/proc/{p}/smaps_rollup") as f:
            total += sum(int(line.split()[1]) for line in f if line.startswith("Pss:"))
    return total


def weights_pss_kb(pid: int) -> int:
    """PSS of the model file's mappings in the process and its children (the weights, shared
    between processes through mmap)."""
    total = 0
    for p in with_children(pid):
        inside = False
        with open(f"/proc/{p}/smaps") as f:
            for line in f:
                if "-" in line.split(" ", 1)[0]:  # a mapping's header line
                    inside = "sha256-" in line
                elif inside and line.startswith("Pss:"):
                    total += int(line.split()[1])
    return total


def workers_pss(workers: int, threads: int, **config) -> tuple[int, int]:
    """(PSS of the workers, the part of it that is the model file's mapping)."""
    with lanthorn(threads=threads, workers=workers, max_workers=workers, cache=False, **config) as server:
        deadline = time.monotonic() + 120
        while not all(_loaded(pid) for pid in server.workers):  # workers load their models at start
            assert time.monotonic() < deadline, "the workers did not load the model in 120 s"
            time.sleep(0.5)
        time.sleep(2)  # the load's last pages
        return (sum(pss_kb(pid) for pid in server.workers), sum(weights_pss_kb(pid) for pid in server.workers))


def _loaded(pid: int) -> bool:
    with open(f"/proc/{pid}/maps") as f:
        return "sha256-" in f.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-ctx", type=int, help="the model's n_ctx (default: its own, 4096)")
    parser.add_argument("--slots", type=int, help="the model's slots (default: its own, 4)")
    args = parser.parse_args()
    config = {k: v for k, v in (("n_ctx", args.n_ctx), ("slots", args.slots)) if v is not None}
    one, one_weights = workers_pss(1, args.threads, **config)
    two, two_weights = workers_pss(2, args.threads, **config)
    print(f"Gemma 3 270M Q4_K_M, workers with the model loaded, config {config or 'as installed'} ({load()})")
    print(f"PSS one worker {one / 1024:.0f} MB (weights {one_weights / 1024:.0f} MB)   two workers "
          f"{two / 1024:.0f} MB (weights {two_weights / 1024:.0f} MB)   ratio {two / one:.2f}x   (goal <= 1.35x)")
    print(f"weights alone: two workers {two_weights / one_weights:.2f}x one (shared through mmap: 1.00x); "
          f"the rest is each worker's own (Python, the vocabulary, the KV cells in use)")


if __name__ == "__main__":
    main()
