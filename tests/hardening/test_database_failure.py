"""The database failing as a request ends, when its usage row is written: the client still gets a
clean end at once, and the row is written when the database is back, or, if it never is within
LANTHORN_USAGE_RETRY_WINDOW, logged at ERROR whole. The failure is real: another connection holds
the lock that the row's write needs (on SQLite the database's write lock, on PostgreSQL the usage
table's, and there the server's connections are cut too), past the server's lock timeout.
"""

import asyncio
import json
import re
import sqlite3
import threading
import time
from contextlib import contextmanager
from datetime import datetime

import httpx
import pytest
from django.db import connection
from django.utils import timezone

from console.models import UsageRecord
from inference import session as session_module
from inference.session import Done, RequestSession
from lanthorn import processes, redis_server
from tests.inference.helpers import chat, sse_events
from tests.stack import _database_url

pytestmark = pytest.mark.django_db(transaction=True)

APP = "lanthorn-dbfail"  # the PostgreSQL application_name of the server under test: its connections are cut
RETRY_WINDOW = 5  # the server's LANTHORN_USAGE_RETRY_WINDOW
RECORD_WAIT = 5  # inference.session.RECORD_WAIT: how long the end of a request may wait for its row


def postgres() -> bool:
    return connection.vendor == "postgresql"


@contextmanager
def usage_locked(*, cut: bool = False):
    """Another connection holds the lock the usage row's write needs until the block ends; on
    PostgreSQL, `cut` also ends the connections of the server under test (a database restart)."""
    db = connection.settings_dict
    if postgres():
        import psycopg

        with psycopg.connect(host=db["HOST"] or "localhost", port=db["PORT"] or 5432, user=db["USER"],
                             password=db["PASSWORD"] or None, dbname=db["NAME"]) as other:
            other.execute("LOCK TABLE console_usagerecord IN EXCLUSIVE MODE")  # reads go on, writes wait
            if cut:
                other.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                              [APP])
            yield
            other.rollback()
    else:
        other = sqlite3.connect(db["NAME"], timeout=10, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # WAL: readers go on, writers wait
            yield
            other.execute("ROLLBACK")
        finally:
            other.close()


@pytest.fixture
def server(stack, tmp_path):
    """A web process of its own whose writes give up on a lock after a second, whose usage rows are
    retried for RETRY_WINDOW seconds, and whose log the test reads."""
    url = _database_url()
    url += (f"?application_name={APP}&options=-c%20lock_timeout%3D1000" if postgres() else "?timeout=1")
    env = {**stack.env, "DATABASE_URL": url, "LANTHORN_USAGE_RETRY_WINDOW": str(RETRY_WINDOW)}
    port = redis_server.free_port()
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        proc = processes.start_server(host="127.0.0.1", port=port, env=env, stderr=out)
    try:
        processes.wait_healthy(f"http://127.0.0.1:{port}", [proc], timeout=60)
        yield f"http://127.0.0.1:{port}", log
    finally:
        processes.stop([proc])


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"no {what} in {timeout} s"
        time.sleep(0.1)
    return result


def test_a_stream_ends_at_once_while_the_database_is_locked_and_its_row_follows(
        server, default_model, member, member_key):
    url, log = server
    body = chat("Count from one to twenty.", max_tokens=24, stream=True)
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {member_key.raw}"}) as r:
        assert r.status_code == 200
        request_id = r.headers["x-request-id"]
        lines = r.iter_lines()
        assert next(lines).startswith("data: {")
        with usage_locked(cut=True):
            rest = [line for line in lines if line]
            ended = datetime.now()
            assert not UsageRecord.objects.filter(request_id=request_id).exists()
            released = timezone.now()

    assert rest[-1] == "data: [DONE]"
    chunks = [json.loads(line[len("data: "):]) for line in rest[:-1]]
    assert not [chunk for chunk in chunks if "error" in chunk]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    # From the moment the server had the whole answer (it logs the request, then writes its row)
    # to the client's [DONE]: the server's lock timeout (1 s), not SQLite's default 20 s.
    logged = re.search(rf"^(\S+ \S+) INFO inference\.services \[{request_id}\] ", log.read_text(), re.M)
    waited = (ended - datetime.strptime(logged.group(1), "%Y-%m-%d %H:%M:%S,%f")).total_seconds()
    assert waited < RECORD_WAIT, f"the stream ended {waited:.1f} s after its answer was complete"
    row = wait_for(lambda: UsageRecord.objects.filter(request_id=request_id).first(), RETRY_WINDOW, "usage row")
    assert (row.status_code, row.outcome, row.finish_reason, row.user) == (200, "ok", "length", member)
    assert row.completion_tokens == 24
    assert row.created_at < released  # when the request ended, not when the row got in
    assert f"the database did not take the usage row of request {request_id}" in log.read_text()
    wait_for(lambda: f"wrote the usage row of request {request_id} at try" in log.read_text(), 5, "log line")


def test_a_usage_row_the_database_never_takes_is_logged_whole_at_error(server, default_model, member, member_key):
    url, log = server
    headers = {"Authorization": f"Bearer {member_key.raw}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        # The key's first use records when it was used, a write of its own, before this lock.
        assert client.post("/v1/chat/completions", json=chat("Hi.", max_tokens=2)).status_code == 200
        with usage_locked():
            r = client.post("/v1/chat/completions", json=chat("Say hello.", max_tokens=8))
            assert r.status_code == 200, r.text
            request_id = r.headers["x-request-id"]
            pattern = rf"^.* ERROR inference\.services .*lost the usage row of request {request_id} .*; the row: (.*)$"
            lost = wait_for(lambda: re.search(pattern, log.read_text(), re.M), RETRY_WINDOW + 10, "ERROR line")

    answer = r.json()
    assert answer["choices"][0]["message"]["content"]
    record = json.loads(lost.group(1))
    assert record["request_id"] == request_id
    assert (record["status_code"], record["outcome"], record["endpoint"]) == (200, "ok", "/v1/chat/completions")
    assert (record["prompt_tokens"], record["completion_tokens"]) == (
        answer["usage"]["prompt_tokens"], answer["usage"]["completion_tokens"])
    assert (record["username"], record["user_id"], record["api_key_id"]) == ("bob", member.pk, member_key.key.pk)
    assert record["model_name"] == "gemma3-270m" and record["created_at"]
    time.sleep(1)
    assert not UsageRecord.objects.filter(request_id=request_id).exists()  # given up: not written late


def test_a_request_does_not_wait_on_a_locked_database_past_record_wait(
        stack, default_model, member, settings, monkeypatch, caplog):
    """In the web process itself: a write that waits for a lock (SQLite's 20 s busy timeout; no
    limit on PostgreSQL) holds the request's end RECORD_WAIT seconds at most; the row gets in once
    the lock is gone."""
    monkeypatch.setattr(session_module, "RECORD_WAIT", 1.0, raising=False)
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                                           "CONFIG": {"hosts": [stack.redis_url]}}}
    ended, result = threading.Event(), {}

    async def go():
        request = RequestSession(interface="test", kind="chat", user=member)
        await request.start(chat("Say hi.", max_tokens=4))
        result["request_id"] = request.request_id
        result["events"] = [event async for event in request.events()]
        result["ended"] = time.time()
        ended.set()

    # asyncio.run waits for the write's thread as it closes: it returns once the lock is gone.
    thread = threading.Thread(target=lambda: asyncio.run(asyncio.wait_for(go(), timeout=40)))
    with usage_locked():
        thread.start()
        assert ended.wait(30), "the request did not end while the database was locked"
        assert not UsageRecord.objects.filter(request_id=result["request_id"]).exists()
    thread.join(30)

    assert isinstance(result["events"][-1], Done)
    # From the moment the session had the whole answer (it logs the request, then writes its row).
    [logged] = [r for r in caplog.records if r.name == "inference.services" and r.getMessage().startswith("test ")]
    waited = result["ended"] - logged.created
    assert waited < 3, f"the request ended {waited:.1f} s after its answer was complete"
    assert f"the usage row of request {result['request_id']} is not written after 1 s" in caplog.text
    row = wait_for(lambda: UsageRecord.objects.filter(request_id=result["request_id"]).first(), 10, "usage row")
    assert (row.status_code, row.outcome, row.user) == (200, "ok", member)
