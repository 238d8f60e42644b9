"""Disconnects and crashes: the worker is freed, and the client never hangs."""

import time

import pytest

from console.models import UsageRecord
from tests.inference.helpers import chat

pytestmark = pytest.mark.django_db(transaction=True)

LONG = {"model": "gemma3-270m", "prompt": "1, 2, 3, 4, 5, 6, 7,", "temperature": 0, "max_tokens": 3000}


def wait_for_row(**filters) -> UsageRecord:
    for _ in range(100):
        row = UsageRecord.objects.filter(**filters).first()
        if row:
            return row
        time.sleep(0.1)
    raise AssertionError(f"no usage row with {filters}")


def test_a_client_disconnect_stops_the_generation_and_frees_the_worker(api):
    # 3000 tokens would keep the model busy for about a minute: if the disconnect did not
    # stop it, the next request would wait behind it and time out.
    with api.stream("POST", "/v1/completions", json={**LONG, "stream": True}) as r:
        lines = r.iter_lines()
        received = [next(lines) for _ in range(6)]
    assert any(line.startswith("data: {") for line in received)
    row = wait_for_row(outcome="cancelled")
    assert row.completion_tokens < 100

    r = api.post("/v1/chat/completions", json=chat("Hello", max_tokens=4), timeout=30)
    assert r.status_code == 200
    assert r.json()["usage"]["completion_tokens"] <= 4


def test_a_crashed_worker_fails_its_request_with_an_error(api, stack):
    try:
        with api.stream("POST", "/v1/completions", json={**LONG, "stream": True}, timeout=60) as r:
            lines = r.iter_lines()
            assert next(lines).startswith("data: {")
            stack.kill_worker()
            rest = [line for line in lines if line]
        errors = [line for line in rest if '"error"' in line]
        assert errors and "worker" in errors[0]
        assert rest[-1] == "data: [DONE]"
        row = wait_for_row(outcome="error")
        assert row.error_code == "worker_lost"
    finally:
        stack.start_worker()


def test_a_request_with_no_worker_running_fails_quickly(api, stack):
    stack.kill_worker()
    try:
        # Wait until the dead worker's heartbeat expires (the jobs worker serves no model).
        from core.workers import INFERENCE, live_workers

        deadline = time.monotonic() + 30
        while live_workers(kind=INFERENCE):
            assert time.monotonic() < deadline, "the killed worker's heartbeat did not expire"
            time.sleep(0.2)
        r = api.post("/v1/chat/completions", json=chat("hi", max_tokens=3), timeout=30)
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "no_worker"
    finally:
        stack.start_worker()
