"""Failures on the way: a web process killed mid-stream, Redis going away or restarting under a
request. Each ends in an error the door can send, and the worker does not generate for nobody."""

import asyncio
import time

import httpx
import pytest

from console.models import UsageRecord
from core.redis import redis_client
from core.workers import beat
from inference.session import Failed, RequestSession
from lanthorn import processes, redis_server
from tests.hardening.monitor import Published
from tests.inference.helpers import chat

pytestmark = pytest.mark.django_db(transaction=True)

MAX_TOKENS = 3000  # about a minute of generation, were it not stopped


def test_a_web_process_killed_mid_stream_stops_its_generation_in_the_worker(stack, default_model, member_key):
    port = redis_server.free_port()
    server = processes.start_server(host="127.0.0.1", port=port, env=stack.env)
    published = Published(stack.redis_url)
    try:
        url = f"http://127.0.0.1:{port}"
        processes.wait_healthy(url, [server], timeout=60)
        body = {"model": "gemma3-270m", "prompt": "1, 2, 3, 4, 5, 6, 7,", "temperature": 0,
                "max_tokens": MAX_TOKENS, "stream": True}
        with httpx.stream("POST", url + "/v1/completions", json=body, timeout=60,
                          headers={"Authorization": f"Bearer {member_key.raw}"}) as r:
            lines = r.iter_lines()
            assert next(lines).startswith("data: {")
            processes.kill(server)
        deadline = time.monotonic() + 30
        while not published.final() and time.monotonic() < deadline:
            time.sleep(0.1)
        final = published.final()
        assert final, f"no final event: {published.messages[-2:]} {published.unreadable[:2]}"
        assert final[0]["type"] == "inference.done"
        assert final[0]["finish_reason"] == "cancelled"
        assert final[0]["completion_tokens"] < 100
    finally:
        published.close()
        if server.poll() is None:
            processes.kill(server)


@pytest.fixture
def own_redis(settings, tmp_path):
    """The session under test talks to a Redis of its own (its reply channel, watchdog and cancel
    flags), which the test can stop or restart; the stack's worker still takes the job."""
    proc, url = redis_server.start_private(tmp_path / "redis")
    settings.REDIS_URL = url
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                                           "CONFIG": {"hosts": [url]}}}
    redis_client.cache_clear()
    # The stack's worker takes the job from the stack's broker; here its presence is announced in
    # this Redis too, where the session checks that a worker serves the model before queueing.
    beat(worker="stack-worker", models=None)
    box = {"proc": proc, "url": url, "dir": tmp_path / "redis"}
    yield box
    processes.stop([box["proc"]])
    redis_client.cache_clear()


def run_session(member, during) -> list:
    """Starts a chat request as the member, calls `during()`, then collects its events (60 s at most)."""
    async def go():
        session = RequestSession(interface="test", kind="chat", user=member)
        await session.start(chat("Count to a thousand.", max_tokens=MAX_TOKENS))
        during()
        return [event async for event in session.events()]

    return asyncio.run(asyncio.wait_for(go(), timeout=60))


def test_the_watchdog_outlives_redis_going_away_and_ends_the_request_by_its_deadline(
        stack, default_model, member, settings, own_redis):
    settings.LANTHORN_REQUEST_TIMEOUT = 6
    started = time.monotonic()
    events = run_session(member, lambda: processes.stop([own_redis["proc"]]))
    assert isinstance(events[-1], Failed)
    assert events[-1].error.code == "timeout"
    assert time.monotonic() - started < 20
    row = UsageRecord.objects.get()
    assert (row.status_code, row.error_code, row.user) == (504, "timeout", member)


def test_a_request_whose_redis_restarts_fails_with_redis_lost(stack, default_model, member, own_redis):
    def restart():
        port = int(own_redis["url"].rsplit(":", 1)[1].split("/")[0])
        processes.stop([own_redis["proc"]])
        own_redis["proc"], _ = redis_server.start_private(own_redis["dir"], port=port)

    started = time.monotonic()
    events = run_session(member, restart)
    assert isinstance(events[-1], Failed)
    assert events[-1].error.code == "redis_lost"
    assert time.monotonic() - started < 15
    row = UsageRecord.objects.get()
    assert (row.status_code, row.error_code) == (503, "redis_lost")
