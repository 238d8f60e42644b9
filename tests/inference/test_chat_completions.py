import pytest

from console.models import UsageRecord
from tests.inference.helpers import chat, sse_events

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_answers_a_chat_completion(api):
    r = api.post("/v1/chat/completions", json=chat("Name three colours.", max_tokens=12))
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "gemma3-270m"
    message = body["choices"][0]["message"]
    assert message["role"] == "assistant"
    assert message["content"].strip()
    assert body["choices"][0]["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert usage["prompt_tokens"] > 5
    assert 0 < usage["completion_tokens"] <= 12
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_it_streams_a_chat_completion(api):
    with api.stream("POST", "/v1/chat/completions", json=chat("Count: one, two,", max_tokens=10, stream=True)) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text.strip()
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert len({c["id"] for c in chunks}) == 1


def test_stream_and_non_stream_give_the_same_greedy_text(api):
    request = chat("The capital of France is", max_tokens=8)
    whole = api.post("/v1/chat/completions", json=request).json()["choices"][0]["message"]["content"]
    with api.stream("POST", "/v1/chat/completions", json={**request, "stream": True}) as r:
        chunks = sse_events(r)[:-1]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == whole


def test_it_sends_usage_in_a_last_chunk_when_asked(api):
    request = chat("Hello", max_tokens=5, stream=True, stream_options={"include_usage": True})
    with api.stream("POST", "/v1/chat/completions", json=request) as r:
        events = sse_events(r)
    usage_chunk = events[-2]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] <= 5
    assert usage_chunk["usage"]["prompt_tokens"] > 0
    assert all(e["usage"] is None for e in events[:-2])


def test_it_stops_at_a_stop_string(api):
    request = {"model": "gemma3-270m", "prompt": "1, 2, 3, 4, 5, 6,", "temperature": 0,
               "max_tokens": 30, "stop": [" 9"]}
    body = api.post("/v1/completions", json=request).json()
    assert body["choices"][0]["finish_reason"] == "stop"
    assert " 9" not in body["choices"][0]["text"]
    assert "8" in body["choices"][0]["text"]


def test_chinese_output_streams_as_valid_utf8(api):
    request = chat("请解释量子纠缠现象", max_tokens=40, stream=True)
    with api.stream("POST", "/v1/chat/completions", json=request) as r:
        raw = b"".join(r.iter_bytes())
    text = raw.decode("utf-8")  # strict: raises on a broken sequence
    assert "\ufffd" not in text
    import json

    content = "".join(
        json.loads(line[6:])["choices"][0]["delta"].get("content", "")
        for line in text.splitlines() if line.startswith("data: {")
    )
    assert any("\u4e00" <= ch <= "\u9fff" for ch in content), content


def test_each_request_leaves_one_usage_row_with_its_token_counts(api, member_key):
    body = api.post("/v1/chat/completions", json=chat("Hi", max_tokens=6)).json()
    row = UsageRecord.objects.get()
    assert row.api_key == member_key.key
    assert row.user == member_key.key.user
    assert row.model_name == "gemma3-270m"
    assert row.version_digest.startswith("a5fd3b62")
    assert row.endpoint == "/v1/chat/completions"
    assert row.prompt_tokens == body["usage"]["prompt_tokens"]
    assert row.completion_tokens == body["usage"]["completion_tokens"]
    assert row.status_code == 200 and row.outcome == "ok"
    assert 0 < row.ttft_ms <= row.latency_ms


def test_a_streamed_request_records_its_usage_too(api):
    request = chat("Hi", max_tokens=6, stream=True, stream_options={"include_usage": True})
    with api.stream("POST", "/v1/chat/completions", json=request) as r:
        usage = sse_events(r)[-2]["usage"]
    row = UsageRecord.objects.get()
    assert (row.prompt_tokens, row.completion_tokens) == (usage["prompt_tokens"], usage["completion_tokens"])
    assert row.outcome == "ok"
