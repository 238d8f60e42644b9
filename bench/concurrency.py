"""Concurrent streaming clients against Lanthorn and against llama-cpp-python's own server
(`python -m llama_cpp.server`), same model, threads, prompts and max_tokens, in one invocation:
aggregate tok/s and TTFT p50/p95 for 1, 2, 4 and 8 clients. Each client count runs 3 rounds,
interleaved with the others', and the median round counts: a single stream's round lasts about a
second, and these VMs' speed drifts by 10-30 % within minutes.

Goals: 4 clients >= 2.2x Lanthorn's single stream and >= 3x the peer's 4-client aggregate;
8 clients >= 3x single; TTFT p95 at 8 clients <= 1 s.

The peer needs the `llama-cpp-python[server]` extra's packages, kept out of requirements.txt:
`make bench-peer` installs them under var/bench-peer (without it, the peer's rows are skipped).

    .venv/bin/python bench/concurrency.py [--max-tokens 96] [--threads 2] [--clients 1,2,4,8]
                                          [--rounds 3] [--invariant on|off]

`--invariant off` runs Lanthorn without the model's batch-invariant greedy output (its default is on):
ggml then repacks the Q4_K matrices, whose batched kernels are faster.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from harness import ROOT, lanthorn, load, processes, redis_server, stream

PROMPTS = ["Quantum entanglement is", "The history of Rome begins", "A good cup of coffee needs",
           "The ocean covers most of", "Mountains are formed when", "The first computers were",
           "In the forest at night,", "A healthy breakfast has"]
PEER_PACKAGES = ROOT / "var" / "bench-peer"


def round_of(url: str, key: str, clients: int, args) -> tuple[float, list[float]]:
    """One round of `clients` concurrent streams: (aggregate tok/s, their TTFTs)."""
    def one(i):
        return stream(url, "/v1/completions", {"model": "gemma3-270m", "prompt": PROMPTS[i % len(PROMPTS)],
                                               "max_tokens": args.max_tokens, "temperature": 0}, key=key)

    with ThreadPoolExecutor(clients) as pool:
        runs = list(pool.map(one, range(clients)))
    wall = max(r.end for r in runs) - min(r.start for r in runs)
    return sum(r.tokens for r in runs) / wall, [r.ttft for r in runs]


def measure(url: str, key: str, args) -> dict:
    """`args.rounds` rounds of each client count, interleaved (1, 2, 4, 8, 1, 2, ...) so that the
    machine's drift falls on every count alike: the median round's tok/s, and the TTFTs of all."""
    round_of(url, key, 2, args)  # warm-up
    rates, ttfts = {n: [] for n in args.clients}, {n: [] for n in args.clients}
    for _ in range(args.rounds):
        for n in args.clients:
            rate, times = round_of(url, key, n, args)
            rates[n].append(rate)
            ttfts[n].extend(times)
    result = {}
    for n in args.clients:
        times = sorted(ttfts[n])
        result[n] = {"tok_s": statistics.median(rates[n]), "rounds": rates[n], "p50": statistics.median(times),
                     "p95": times[min(len(times) - 1, round(0.95 * (len(times) - 1)))], "load": load()}
    return result


def peer(model_path, args) -> dict | None:
    if not PEER_PACKAGES.exists():
        print(f"(no peer: {PEER_PACKAGES} is missing; `make bench-peer` installs llama-cpp-python[server]'s packages)")
        return None
    port = redis_server.free_port()
    env = {**os.environ, "PYTHONPATH": str(PEER_PACKAGES)}
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(model_path),
                             "--n_threads", str(args.threads), "--n_threads_batch", str(args.threads),
                             "--n_ctx", "4096", "--port", str(port), "--host", "127.0.0.1"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                stream(url, "/v1/completions", {"prompt": "Hi", "max_tokens": 1})
                break
            except (OSError, AssertionError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("llama_cpp.server did not start")
                time.sleep(0.5)
        return measure(url, "", args)
    finally:
        processes.stop([proc])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clients", default="1,2,4,8")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each client count (the median counts)")
    parser.add_argument("--invariant", choices=["on", "off"], default="on")
    args = parser.parse_args()
    args.clients = [int(n) for n in args.clients.split(",")]
    with lanthorn(threads=args.threads, slots=max(args.clients), cache=False,
                  invariant=args.invariant == "on") as server:
        ours = measure(server.url, server.key, args)
        model_path = server.model_path
        theirs = peer(model_path, args)
    print(f"Gemma 3 270M Q4_K_M, {args.threads} threads, max_tokens {args.max_tokens}, temperature 0, "
          f"different prompts per client, streaming /v1/completions, tok/s the median of {args.rounds} rounds, "
          f"invariant {args.invariant}")
    print(f"{'server':22} {'clients':>7} {'tok/s':>8} {'TTFT p50':>9} {'TTFT p95':>9}  {'rounds':24} machine")
    for name, rows in (("Lanthorn", ours), ("llama_cpp.server", theirs)):
        for n, row in (rows or {}).items():
            rounds = " / ".join(f"{rate:.1f}" for rate in row["rounds"])
            print(f"{name:22} {n:7} {row['tok_s']:8.1f} {row['p50'] * 1000:7.0f}ms {row['p95'] * 1000:7.0f}ms  "
                  f"{rounds:24} {row['load']}")
    single = ours[args.clients[0]]["tok_s"]
    for n in args.clients[1:]:
        print(f"Lanthorn {n} clients / 1 client: {ours[n]['tok_s'] / single:.2f}x"
              + ("   (goal >= 2.2x)" if n == 4 else "   (goal >= 3x)" if n == 8 else ""))
    if theirs and 4 in ours:
        print(f"Lanthorn 4 clients / llama_cpp.server 4 clients: {ours[4]['tok_s'] / theirs[4]['tok_s']:.2f}x   (goal >= 3x)")
    if 8 in ours:
        print(f"Lanthorn TTFT p95 at 8 clients: {ours[8]['p95'] * 1000:.0f} ms   (goal <= 1000 ms)")


if __name__ == "__main__":
    main()
