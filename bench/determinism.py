"""Temperature 0 means the same answer: 20 greedy chat requests, in shuffled order, alone and 4 at a
time, with cold and warm prompt-prefix caches, through Lanthorn (response cache off). Prints how many
distinct answers each request got (goal: 1) and what invariance costs in tok/s (4 at a time, the
model's `invariant` setting on against off, in the same invocation).

    .venv/bin/python bench/determinism.py [--max-tokens 48] [--threads 2]
"""

import argparse
import random
from concurrent.futures import ThreadPoolExecutor

from harness import lanthorn, load, stream

SYSTEM = ("You are a helpful assistant for a small team. Answer in one or two sentences, plainly, "
          "without lists, and say so when you do not know. ") * 3
TOPICS = ["the ocean", "mountains and rivers", "gravity", "bread", "volcanoes", "the moon", "bees",
          "rain", "trains", "chess", "glass", "maps", "tea", "owls", "clocks", "salt", "bridges",
          "paper", "wind", "music"]


def ask(server, topic: str, args):
    body = {"model": "gemma3-270m", "temperature": 0, "max_tokens": args.max_tokens,
            "messages": [{"role": "system", "content": SYSTEM},
                         {"role": "user", "content": f"Write one sentence about {topic}."}]}
    return stream(server.url, "/v1/chat/completions", body, key=server.key)


def rounds(server, args, rng) -> tuple[dict[str, set], float]:
    """Each topic in 4 rounds (alone, 4 at a time, twice over: cold then warm slots); tok/s of the 4-at-a-time rounds."""
    answers: dict[str, set] = {t: set() for t in TOPICS}
    tokens = seconds = 0.0
    for parallel in (1, 4, 1, 4):
        order = rng.sample(TOPICS, len(TOPICS))
        with ThreadPoolExecutor(parallel) as pool:
            runs = list(pool.map(lambda t: ask(server, t, args), order))
        for topic, run in zip(order, runs):
            answers[topic].add(run.text)
        if parallel == 4:
            tokens += sum(r.tokens for r in runs)
            seconds += max(r.end for r in runs) - min(r.start for r in runs)
    return answers, tokens / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    results = {}
    for invariant in (True, False):
        with lanthorn(threads=args.threads, cache=False, invariant=invariant) as server:
            results[invariant] = rounds(server, args, random.Random(args.seed)) + (load(),)
    print(f"Gemma 3 270M Q4_K_M, {args.threads} threads, max_tokens {args.max_tokens}, 20 greedy chat requests, "
          "each alone and 4 at a time, cold then warm prefix cache")
    for invariant, (answers, tok_s, machine) in results.items():
        counts = [len(v) for v in answers.values()]
        print(f"invariant={invariant!s:5}: distinct answers per request {counts}  max {max(counts)}   "
              f"4-at-a-time {tok_s:.1f} tok/s   ({machine})")
    print(f"invariance costs {1 - results[True][1] / results[False][1]:+.1%} of throughput (goal: 1 distinct answer each)")


if __name__ == "__main__":
    main()
