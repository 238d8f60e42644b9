"""The hash chain, in the standard library only: the same code checks the database and an export.

An event's hash is the SHA-256 of its canonical JSON (sorted keys, no spaces, UTF-8), which
includes the previous event's hash and the event's sequence number. So an edited event no longer
matches its hash, an inserted one breaks the link of the event after it, and a deleted one leaves
a gap in the sequence.
"""

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

GENESIS = "0" * 64  # the previous hash of the first event ever recorded
FIELDS = ("seq", "time", "actor_id", "actor_username", "key_prefix", "source_ip", "user_agent", "action",
          "target", "outcome", "details", "content_digest", "prev_hash")


def canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def body(event: dict) -> str:
    """What is hashed: the canonical JSON of an event's FIELDS (other keys, such as `hash`, are left out)."""
    return canonical({f: event[f] for f in FIELDS})


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def event_hash(event: dict) -> str:
    return sha256(body(event))


class ChainBroken(Exception):
    """The first event that was edited, inserted or deleted; `seq` names it."""

    def __init__(self, seq: int, message: str):
        super().__init__(message)
        self.seq, self.message = seq, message


@dataclass
class Verified:
    count: int
    head_seq: int | None
    head_hash: str


def verify(events: Iterable[dict], *, prev_seq: int | None = None, prev_hash: str | None = None) -> Verified:
    """Walks events in sequence order. `prev_seq`/`prev_hash`: where the chain must start (after the
    last purge checkpoint, or before the first event ever: 0 and GENESIS); None: trust the first
    event's link (an export that starts mid-chain). Raises ChainBroken at the first break."""
    count, before_prev = 0, None
    for event in events:
        absent = [f for f in (*FIELDS, "hash") if f not in event]
        if absent:
            raise ChainBroken(event.get("seq", 0), f"event {event.get('seq', '?')} lacks {', '.join(absent)}")
        seq = event["seq"]
        if prev_seq is not None and seq > prev_seq + 1:
            missing = f"{prev_seq + 1}" if seq == prev_seq + 2 else f"{prev_seq + 1}..{seq - 1}"
            raise ChainBroken(prev_seq + 1, f"event {missing} was deleted (event {seq} follows event {prev_seq})")
        if prev_seq is not None and seq <= prev_seq:
            raise ChainBroken(seq, f"event {seq} was inserted (it comes after event {prev_seq})")
        if prev_hash is not None and event["prev_hash"] != prev_hash:
            if before_prev is not None and event["prev_hash"] == before_prev:
                raise ChainBroken(prev_seq, f"event {prev_seq} was inserted (event {seq} chains to the one before it)")
            raise ChainBroken(prev_seq if prev_seq is not None else seq,
                              f"event {prev_seq if prev_seq is not None else seq} was edited or replaced "
                              f"(event {seq} does not chain to it)")
        if event_hash(event) != event["hash"]:
            raise ChainBroken(seq, f"event {seq} was edited (its content does not match its hash)")
        before_prev, prev_seq, prev_hash = prev_hash, seq, event["hash"]
        count += 1
    return Verified(count=count, head_seq=prev_seq, head_hash=prev_hash or GENESIS)


def read_jsonl(path) -> Iterable[dict]:
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError as exc:
                    raise ChainBroken(0, f"line {number} is not JSON: {exc}") from None
