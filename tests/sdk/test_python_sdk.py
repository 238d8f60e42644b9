"""The Python SDK (`sdk/python`, import `lanthorn_sdk`) against a live Lanthorn."""

import asyncio
import http.server
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from console.models import UsageRecord
from lanthorn_sdk import (
    AsyncLLMClient,
    AuthenticationError,
    BadRequestError,
    LLMClient,
    NotFoundError,
)
from tests.sdk.conftest import SDK

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def client(live_env):
    with LLMClient(endpoint=live_env["LANTHORN_ENDPOINT"], api_key=live_env["LANTHORN_API_KEY"]) as client:
        yield client


def wait_for_row(**filters) -> UsageRecord:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        row = UsageRecord.objects.filter(**filters).first()
        if row is not None:
            return row
        time.sleep(0.1)
    raise AssertionError(f"no usage row with {filters} within 30 s")


def test_it_generates_text_with_usage(client):
    generation = client.generate(prompt="Water is", max_tokens=8, temperature=0)
    assert generation.text.strip()
    assert 0 < generation.usage.completion_tokens <= 8
    assert generation.usage.total_tokens == generation.usage.prompt_tokens + generation.usage.completion_tokens
    assert wait_for_row(endpoint="/v1/completions").completion_tokens == generation.usage.completion_tokens


def test_it_streams_the_answer_in_pieces(client):
    pieces = list(client.stream(prompt="Once upon a time", max_tokens=16, temperature=0))
    assert len(pieces) >= 2 and "".join(pieces).strip()


def test_it_chats(client):
    answer = client.chat(messages=[{"role": "user", "content": "Say hello."}], max_tokens=8, temperature=0)
    assert answer.text.strip() and answer.finish_reason in ("stop", "length")


def test_it_lists_the_models(client, default_model):
    assert [m.id for m in client.models()] == [default_model.name]


def test_it_stops_the_generation_when_a_stream_is_closed_early(client):
    stream = client.stream(prompt="Count from one to one thousand:", max_tokens=400, temperature=0)
    for _, _piece in zip(range(3), stream):
        pass
    stream.close()
    row = wait_for_row(outcome="cancelled")
    assert row.completion_tokens < 100  # the worker stopped, not only the reader


def test_it_raises_an_authentication_error_for_a_bad_key(live_env):
    with LLMClient(endpoint=live_env["LANTHORN_ENDPOINT"], api_key="lt-wrong", model="x") as client:
        with pytest.raises(AuthenticationError) as caught:
            client.generate(prompt="x", max_tokens=1)
    assert caught.value.status == 401 and caught.value.code == "invalid_api_key"


def test_it_raises_not_found_for_an_unknown_model(client):
    with pytest.raises(NotFoundError) as caught:
        client.generate(prompt="x", model="no-such-model", max_tokens=1)
    assert caught.value.code == "model_not_found"


def test_it_names_the_parameter_of_a_bad_request(client):
    with pytest.raises(BadRequestError) as caught:
        client.generate(prompt="x", temperature=9, max_tokens=1)
    assert caught.value.param == "temperature"


def test_it_retries_after_the_time_retry_after_says():
    """A stand-in for a busy server: 429 with Retry-After: 1, then an answer."""
    calls = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            calls.append(time.monotonic())
            if len(calls) == 1:
                body, status = {"error": {"message": "slow down", "code": "rate_limit_exceeded"}}, 429
            else:
                body, status = {"object": "list", "data": [{"id": "m", "created": 1, "owned_by": "x"}]}, 200
            data = json.dumps(body).encode()
            self.send_response(status)
            if status == 429:
                self.send_header("Retry-After", "1")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with LLMClient(endpoint=f"http://127.0.0.1:{server.server_port}", api_key="k") as client:
            assert [m.id for m in client.models()] == ["m"]
    finally:
        server.shutdown()
    assert len(calls) == 2 and calls[1] - calls[0] >= 1.0


def test_the_async_client_streams_an_answer(live_env):
    async def run():
        async with AsyncLLMClient(endpoint=live_env["LANTHORN_ENDPOINT"], api_key=live_env["LANTHORN_API_KEY"]) as c:
            return [piece async for piece in c.stream(messages=[{"role": "user", "content": "Hi!"}], max_tokens=8)]

    assert "".join(asyncio.run(run())).strip()


def test_it_runs_the_example(live_env):
    result = subprocess.run([sys.executable, str(SDK / "python" / "examples" / "stream.py")],
                            env={**os.environ, **live_env}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
