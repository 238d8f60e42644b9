"""Prompt-prefix reuse: the TTFT of turn 10 of a conversation (about 1,500 tokens of history)
against the TTFT of turn 1, through Lanthorn (response cache off). Goal: turn 10 <= 1.5x turn 1.

    .venv/bin/python bench/prefix.py [--threads 2] [--runs 5]
"""

import argparse
import statistics

from harness import lanthorn, load, stream

FACT = ("The lighthouse on the northern cape was built in 1871 from granite cut on the island, and "
        "its keeper wrote the weather into a log every four hours. ")


def conversation(server, turns: int, name: str) -> list[float]:
    """The TTFT of each turn. Each conversation starts with its own name, so that its turn 1 finds
    no prefix of an earlier conversation in the engine's slots: it is a new conversation's."""
    messages, out = [], []
    for turn in range(turns):
        opening = f"Conversation {name}. " if turn == 0 else ""
        messages.append({"role": "user", "content": opening + f"Note {turn + 1}: " + FACT * 4 + "Say OK."})
        run = stream(server.url, "/v1/chat/completions", {"model": "gemma3-270m", "temperature": 0,
                                                          "max_tokens": 8, "messages": messages,
                                                          "stream_options": {"include_usage": True}},
                     key=server.key)
        out.append(run.ttft)
        messages.append({"role": "assistant", "content": run.text})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)  # VMs drift: 3 left one slow turn the median
    args = parser.parse_args()
    with lanthorn(threads=args.threads, cache=False) as server:
        conversation(server, 2, "warm-up")
        runs = [conversation(server, 10, f"number {i + 1}") for i in range(args.runs)]
        machine = load()
    first = statistics.median(r[0] for r in runs)
    tenth = statistics.median(r[9] for r in runs)
    print(f"Gemma 3 270M Q4_K_M, {args.threads} threads, 10-turn chats (~150 tokens a turn), {args.runs} runs, medians ({machine})")
    print(f"TTFT turn 1: {first * 1000:.0f} ms   turn 10: {tenth * 1000:.0f} ms   "
          f"ratio {tenth / first:.2f}x   (goal <= 1.5x)")


if __name__ == "__main__":
    main()
