"""The response cache through the full path (key check, validation, limits, usage row): latency of
a miss (the worker generates) against a hit (answered from Redis), and hits per second with 8
concurrent clients. Goals: >= 99 % less latency on a hit; >= 200 hits/s on 2 cores.

    .venv/bin/python bench/cache.py [--threads 2] [--hits 400]
"""

import argparse
import http.client
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from harness import lanthorn, load


def post(server, body: dict, connection=None) -> tuple[float, str]:
    host, port = server.url.removeprefix("http://").split(":")
    connection = connection or http.client.HTTPConnection(host, int(port), timeout=300)
    start = time.perf_counter()
    connection.request("POST", "/v1/chat/completions", body=json.dumps(body),
                       headers={"Authorization": f"Bearer {server.key}", "Content-Type": "application/json"})
    response = connection.getresponse()
    response.read()
    assert response.status == 200
    return time.perf_counter() - start, response.getheader("X-Lanthorn-Cache") or "miss"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--hits", type=int, default=400)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()

    def body(i):
        return {"model": "gemma3-270m", "temperature": 0, "max_tokens": args.max_tokens,
                "messages": [{"role": "user", "content": f"Tell me a fact about the number {i}."}]}

    with lanthorn(threads=args.threads, cache=True) as server:
        post(server, body(-1))  # warm-up
        misses, hits = [], []
        for i in range(5):
            elapsed, state = post(server, body(i))
            assert state == "miss"
            misses.append(elapsed)
            elapsed, state = post(server, body(i))
            assert state == "hit"
            hits.append(elapsed)

        def client(n):
            host, port = server.url.removeprefix("http://").split(":")
            connection = http.client.HTTPConnection(host, int(port), timeout=60)
            return [post(server, body(i % 5), connection)[1] for i in range(n)]

        start = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            states = [s for batch in pool.map(client, [args.hits // 8] * 8) for s in batch]
        rate = len(states) / (time.perf_counter() - start)
        assert set(states) == {"hit"}
        machine = load()
    miss, hit = statistics.median(misses), statistics.median(hits)
    print(f"Gemma 3 270M Q4_K_M, {args.threads} threads, max_tokens {args.max_tokens}, non-streaming chat ({machine})")
    print(f"miss {miss * 1000:.0f} ms   hit {hit * 1000:.1f} ms   {1 - hit / miss:.1%} less latency   (goal >= 99 %)")
    print(f"hits per second, 8 clients, {len(states)} requests: {rate:.0f}   (goal >= 200)")


if __name__ == "__main__":
    main()
