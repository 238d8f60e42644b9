"""Compact JSON and Server-Sent Events framing, shared by every door that writes JSON."""

import json


def json_bytes(obj: dict) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def sse(obj: dict) -> bytes:
    return b"data: " + json_bytes(obj) + b"\n\n"


DONE = b"data: [DONE]\n\n"
