"""What Lanthorn's token path costs: raw llama-cpp-python in-process against Lanthorn's
streaming REST API, in one invocation, with the same prompt, model, threads and max_tokens.

Lanthorn runs as `make run` runs it (a worker process and uvicorn; Redis from REDIS_URL or a
private redis-server) on a throwaway SQLite database. Runs alternate between the two paths;
medians are printed with the ratios. Targets: decode ratio >= 0.97, TTFT overhead <= 20 ms.

    .venv/bin/python bench/stream_overhead.py [--runs 11] [--max-tokens 96] [--threads 2] [--invariant on|off]

With `--invariant on` (the model default) Lanthorn's engine keeps the weights in their file layout
for batch-invariant greedy output, while raw llama-cpp-python repacks them: the figures then
include what invariance costs. `--invariant off` compares like with like: the door's own cost.
"""

import argparse
import http.client
import json
import statistics
import time

from harness import lanthorn


def timings(token_times: list[float], start: float) -> tuple[float, float]:
    """(TTFT in ms, decode tok/s after the first token)."""
    ttft = (token_times[0] - start) * 1000
    decode = (len(token_times) - 1) / (token_times[-1] - token_times[0])
    return ttft, decode


def run_raw(llm, args) -> tuple[float, float, int]:
    times = []
    start = time.perf_counter()
    for chunk in llm.create_completion(args.prompt, max_tokens=args.max_tokens, temperature=0, stream=True):
        if chunk["choices"][0]["text"]:
            times.append(time.perf_counter())
    return *timings(times, start), len(times)


def run_lanthorn(url: str, key: str, args) -> tuple[float, float, int]:
    """A minimal client (http.client, no JSON decoding), so the client's own CPU time, which
    the model's threads pay for on a small machine, stays out of Lanthorn's figures."""
    body = json.dumps({"model": "gemma3-270m", "prompt": args.prompt, "max_tokens": args.max_tokens,
                       "temperature": 0, "stream": True})
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=120)
    times = []
    start = time.perf_counter()
    connection.request("POST", "/v1/completions", body=body,
                       headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 200, response.read()
    while line := response.readline():
        if line.startswith(b'data: {"id"') and b'"text":""' not in line:
            times.append(time.perf_counter())
    connection.close()
    return *timings(times, start), len(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompt", default="Quantum entanglement is")
    parser.add_argument("--invariant", choices=["on", "off"], default="on",
                        help="the model's `invariant` setting (off: repacked weights, as raw llama-cpp-python uses)")
    args = parser.parse_args()

    from llama_cpp import Llama

    # Every run must reach the engine, not the response cache.
    with lanthorn(threads=args.threads, cache=False, invariant=args.invariant == "on") as lt:
        llm = Llama(model_path=str(lt.model_path), n_ctx=4096, n_threads=args.threads,
                    n_threads_batch=args.threads, verbose=False)
        run_raw(llm, args), run_lanthorn(lt.url, lt.key, args)  # warm-up: loads, caches, connections
        raw, ours = [], []
        for _ in range(args.runs):
            raw.append(run_raw(llm, args))
            ours.append(run_lanthorn(lt.url, lt.key, args))

    def median(rows, i):
        return statistics.median(r[i] for r in rows)

    print(f"Gemma 3 270M Q4_K_M, {args.threads} threads, max_tokens {args.max_tokens}, temperature 0, "
          f"prompt {args.prompt!r}, {args.runs} runs each (medians)")
    print(f"{'path':34} {'TTFT ms':>9} {'decode tok/s':>13} {'tokens':>7}")
    print(f"{'raw llama-cpp-python, in-process':34} {median(raw, 0):9.1f} {median(raw, 1):13.1f} {median(raw, 2):7.0f}")
    print(f"{'Lanthorn REST streaming (SSE)':34} {median(ours, 0):9.1f} {median(ours, 1):13.1f} {median(ours, 2):7.0f}")
    # Each Lanthorn run is compared with the raw run just before it, so that the machine's own
    # slow spells (a shared VM) touch both sides of a pair.
    ratio = statistics.median(o[1] / r[1] for o, r in zip(ours, raw))
    overhead = statistics.median(o[0] - r[0] for o, r in zip(ours, raw))
    print(f"decode ratio (Lanthorn / raw), median of pairs: {ratio:.3f}   (target >= 0.97)")
    print(f"TTFT overhead, median of pairs: {overhead:+.1f} ms   (target <= 20 ms)")


if __name__ == "__main__":
    main()
