"""The WebSocket API (/ws/v1/chat) on the real stack."""

import json

import pytest
from websockets.sync.client import connect

from console.models import UsageRecord
from core.anonymous import refusal_counts
from tests.doors.helpers import LONG_PROMPT, LONG_TOKENS, NEXT_DEADLINE, wait_for_row

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = {"model": "gemma3-270m", "messages": [{"role": "user", "content": "Name three colours."}],
        "temperature": 0, "max_tokens": 8}


@pytest.fixture
def ws_url(stack):
    return stack.url.replace("http://", "ws://") + "/ws/v1/chat"


@pytest.fixture
def socket(ws_url, default_model, member_key):
    with connect(ws_url, additional_headers={"Authorization": f"Bearer {member_key.raw}"},
                 open_timeout=10) as ws:
        yield ws


def frame(ws, timeout: float = 120) -> dict:
    return json.loads(ws.recv(timeout=timeout))


def send(ws, **data) -> None:
    ws.send(json.dumps(data))


def answer(ws, id, timeout: float = 120) -> tuple[str, dict]:
    """The text of request `id` and its last frame (done or error)."""
    text = []
    while True:
        f = frame(ws, timeout)
        assert f["id"] == id
        if f["type"] != "token":
            return "".join(text), f
        text.append(f["text"])


def test_it_streams_a_chat_answer_as_token_frames(socket):
    send(socket, id="c1", type="chat", **CHAT)
    text, done = answer(socket, "c1")
    assert text.strip()
    assert done["type"] == "done" and done["finish_reason"] in ("stop", "length")
    assert 0 < done["usage"]["completion_tokens"] <= 8
    assert done["usage"]["total_tokens"] == done["usage"]["prompt_tokens"] + done["usage"]["completion_tokens"]


def test_it_answers_a_completion_frame(socket):
    send(socket, id=7, type="completion", model="gemma3-270m", prompt="1, 2, 3,", temperature=0, max_tokens=4)
    text, done = answer(socket, 7)
    assert "4" in text
    assert done["type"] == "done"


def test_each_request_leaves_one_usage_row_tagged_ws(socket, member_key):
    send(socket, id="a", type="chat", **CHAT)
    answer(socket, "a")
    send(socket, id="b", type="completion", model="gemma3-270m", prompt="Hi", max_tokens=3)
    answer(socket, "b")
    rows = {r.endpoint: r for r in UsageRecord.objects.all()}
    assert set(rows) == {"ws.chat", "ws.completion"}
    assert rows["ws.chat"].api_key == member_key.key and rows["ws.chat"].outcome == "ok"
    assert rows["ws.chat"].completion_tokens > 0


def test_it_tells_concurrent_requests_apart_by_id(socket):
    send(socket, id="one", type="completion", model="gemma3-270m", prompt="1, 2, 3,", temperature=0, max_tokens=6)
    send(socket, id="two", type="completion", model="gemma3-270m", prompt="a, b, c,", temperature=0, max_tokens=6)
    texts, done = {"one": "", "two": ""}, set()
    while done != {"one", "two"}:
        f = frame(socket)
        if f["type"] == "token":
            texts[f["id"]] += f["text"]
        else:
            assert f["type"] == "done"
            done.add(f["id"])
    assert "4" in texts["one"] and "d" in texts["two"]


def test_it_takes_the_key_in_a_first_auth_frame(ws_url, default_model, member_key):
    with connect(ws_url, open_timeout=10) as ws:
        send(ws, type="auth", api_key=member_key.raw)
        assert frame(ws) == {"type": "ready"}
        send(ws, id="c1", type="chat", **CHAT)
        assert answer(ws, "c1")[1]["type"] == "done"


def test_a_request_without_a_good_key_gets_an_error_frame(ws_url, default_model):
    refused = refusal_counts().get("invalid_api_key", 0)
    with connect(ws_url, additional_headers={"Authorization": "Bearer lt-wrong"}, open_timeout=10) as ws:
        send(ws, id="c1", type="chat", **CHAT)
        f = frame(ws)
        assert f["id"] == "c1" and f["type"] == "error"
        assert f["error"]["code"] == "invalid_api_key"
        send(ws, type="auth", api_key="lt-still-wrong")
        assert frame(ws)["error"]["code"] == "invalid_api_key"
    # Nobody was authenticated: no usage rows, counts instead (issue 8)
    assert refusal_counts().get("invalid_api_key", 0) == refused + 2
    assert not UsageRecord.objects.exists()


def test_an_unknown_model_gets_an_error_frame(socket):
    send(socket, id="c1", type="chat", **{**CHAT, "model": "no-such-model"})
    f = frame(socket)
    assert (f["id"], f["type"], f["error"]["code"], f["error"]["param"]) == ("c1", "error", "model_not_found", "model")
    assert wait_for_row(endpoint="ws.chat").status_code == 404


def test_bad_parameters_and_bad_frames_get_error_frames_and_the_socket_stays_open(socket):
    send(socket, id="c1", type="chat", **{**CHAT, "temperature": "hot"})
    f = frame(socket)
    assert f["type"] == "error" and f["error"]["param"] == "temperature"
    socket.send("not json")
    assert frame(socket)["error"]["code"] == "invalid_frame"
    send(socket, id="c2", type="dance")
    assert frame(socket)["error"]["param"] == "type"
    send(socket, type="chat", **CHAT)
    assert frame(socket)["error"]["param"] == "id"
    send(socket, id="c3", type="chat", **CHAT)
    assert answer(socket, "c3")[1]["type"] == "done"


def test_cancel_stops_the_generation_in_the_worker(socket):
    send(socket, id="long", type="completion", model="gemma3-270m", prompt=LONG_PROMPT, temperature=0,
         max_tokens=LONG_TOKENS)
    assert frame(socket)["type"] == "token"
    send(socket, id="long", type="cancel")
    f = frame(socket)
    while f["type"] == "token":
        f = frame(socket)
    assert (f["id"], f["type"], f["finish_reason"]) == ("long", "done", "cancelled")
    row = wait_for_row(outcome="cancelled")
    assert row.endpoint == "ws.completion" and row.completion_tokens < 100
    # The worker is free: a short request is answered at once, not after the long one's minute.
    send(socket, id="next", type="completion", model="gemma3-270m", prompt="Hi", max_tokens=4)
    text, done = answer(socket, "next", timeout=NEXT_DEADLINE)
    assert done["type"] == "done" and done["usage"]["completion_tokens"] <= 4
