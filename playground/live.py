"""A room's live state in Redis, shared by every server process: who is present, and the answer
being generated (the room's lock, and its text so far for members who join mid-answer).

Each piece of an answer has an index (its place in the Redis list); a member who joins reads the
pieces so far after joining the room's group, and drops streamed pieces it already has.
"""

import json

from django.conf import settings

from core.redis import redis_client

PRESENT = "lanthorn:playground:{}:present"  # hash: socket's channel name → username
ANSWER = "lanthorn:playground:{}:answer"  # the answer in progress: {"request_id", "by"}
PIECES = "lanthorn:playground:{}:pieces"  # list: its text, one piece per token


def _ttl() -> int:
    """A crashed server process leaves no room locked for longer than a request may wait."""
    return int(settings.LANTHORN_WORKER_TIMEOUT) + 60


def join(*, room: int, channel: str, username: str) -> list[str]:
    redis_client().hset(PRESENT.format(room), channel, username)
    return present(room=room)


def leave(*, room: int, channel: str) -> list[str]:
    redis_client().hdel(PRESENT.format(room), channel)
    return present(room=room)


def present(*, room: int) -> list[str]:
    return sorted({name.decode() for name in redis_client().hvals(PRESENT.format(room))})


def begin_answer(*, room: int, request_id: str, by: str) -> bool:
    """Takes the room for one answer; False while another is being generated."""
    client = redis_client()
    if not client.set(ANSWER.format(room), json.dumps({"request_id": request_id, "by": by}), nx=True, ex=_ttl()):
        return False
    client.delete(PIECES.format(room))
    return True


def add_pieces(*, room: int, pieces: list[str]) -> int:
    """Appends text to the answer in progress; returns the index of its first piece."""
    with redis_client().pipeline() as pipe:
        pipe.rpush(PIECES.format(room), *pieces)
        pipe.expire(PIECES.format(room), _ttl())
        pipe.expire(ANSWER.format(room), _ttl())
        length = pipe.execute()[0]
    return length - len(pieces)


def answer_so_far(*, room: int) -> dict | None:
    """The answer in progress, {"request_id", "by", "pieces"}, or None."""
    with redis_client().pipeline() as pipe:  # MULTI: the pieces belong to that answer
        pipe.get(ANSWER.format(room))
        pipe.lrange(PIECES.format(room), 0, -1)
        answer, pieces = pipe.execute()
    if answer is None:
        return None
    return {**json.loads(answer), "pieces": [p.decode() for p in pieces]}


def end_answer(*, room: int) -> None:
    redis_client().delete(ANSWER.format(room), PIECES.format(room))
