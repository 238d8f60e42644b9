"""The Ollama-compatible API on the real stack, through the unmodified `ollama` client."""

import json

import httpx
import ollama
import pytest

from console.models import UsageRecord
from core.anonymous import refusal_counts
from console.services import create_api_key
from tests.doors.helpers import LONG_PROMPT, LONG_TOKENS, NEXT_DEADLINE, wait_for_row
from tests.registry.test_pull_jobs import serve_gguf

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGES = [{"role": "user", "content": "Name three colours."}]
GREEDY = {"temperature": 0, "seed": 42, "num_predict": 6}


@pytest.fixture
def client(stack, default_model, member_key):
    return ollama.Client(host=stack.url, headers={"Authorization": f"Bearer {member_key.raw}"}, timeout=120)


def test_it_streams_a_chat(client):
    parts = list(client.chat(model="gemma3-270m", messages=MESSAGES, options=GREEDY, stream=True))
    assert all(not p.done for p in parts[:-1]) and parts[-1].done
    assert "".join(p.message.content for p in parts).strip()
    last = parts[-1]
    assert last.done_reason in ("stop", "length")
    assert 0 < last.eval_count <= 6 and last.prompt_eval_count > 5
    assert last.total_duration >= last.eval_duration > 0


def test_it_answers_a_chat_in_one_object_without_stream(client):
    client.chat(model="gemma3-270m", messages=MESSAGES, options=GREEDY)  # the same cache state for both
    whole = client.chat(model="gemma3-270m:latest", messages=MESSAGES, options=GREEDY)
    streamed = client.chat(model="gemma3-270m", messages=MESSAGES, options=GREEDY, stream=True)
    assert whole.done and whole.message.role == "assistant"
    assert whole.message.content == "".join(p.message.content for p in streamed)


def test_it_generates_from_a_raw_prompt_and_streams_it(client):
    whole = client.generate(model="gemma3-270m", prompt="1, 2, 3,", raw=True, options=GREEDY)
    assert "4" in whole.response and whole.done
    parts = list(client.generate(model="gemma3-270m", prompt="1, 2, 3,", raw=True, options=GREEDY, stream=True))
    assert "".join(p.response for p in parts) == whole.response


def test_generate_applies_the_chat_template_to_the_prompt(client):
    # The first request leaves the prompt in the engine's cache, so both compared ones reuse it
    # alike (a prompt evaluated whole and one evaluated on a cached prefix may differ in near-ties).
    client.chat(model="gemma3-270m", messages=MESSAGES, options=GREEDY)
    templated = client.generate(model="gemma3-270m", prompt="Name three colours.", options=GREEDY)
    chat = client.chat(model="gemma3-270m", messages=MESSAGES, options=GREEDY)
    assert templated.response == chat.message.content


def test_num_predict_limits_the_answer_and_stop_cuts_it(client):
    r = client.generate(model="gemma3-270m", prompt="1, 2, 3, 4, 5, 6,", raw=True,
                        options={"temperature": 0, "num_predict": 30, "stop": [" 9"]})
    assert r.done_reason == "stop" and " 9" not in r.response and "8" in r.response
    r = client.generate(model="gemma3-270m", prompt="1, 2, 3,", raw=True, options={"num_predict": 2})
    assert r.eval_count == 2 and r.done_reason == "length"


def test_each_request_leaves_one_usage_row_tagged_ollama(client, member_key):
    client.chat(model="gemma3-270m", messages=MESSAGES, options=GREEDY)
    client.generate(model="gemma3-270m", prompt="Hi", options=GREEDY)
    rows = {r.endpoint: r for r in UsageRecord.objects.all()}
    assert set(rows) == {"ollama.chat", "ollama.generate"}
    assert all(r.api_key == member_key.key and r.outcome == "ok" and r.completion_tokens > 0 for r in rows.values())


def test_a_bad_key_is_refused(stack, default_model):
    refused = refusal_counts().get("invalid_api_key", 0)
    client = ollama.Client(host=stack.url, headers={"Authorization": "Bearer lt-wrong"})
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model="gemma3-270m", messages=MESSAGES)
    assert caught.value.status_code == 401 and "API key" in caught.value.error
    with pytest.raises(ollama.ResponseError) as caught:
        client.list()
    assert caught.value.status_code == 401
    # Nobody was authenticated: no usage row, a count instead (issue 8)
    assert refusal_counts().get("invalid_api_key", 0) > refused
    assert not UsageRecord.objects.exists()


def test_an_unknown_model_is_a_404(client):
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model="no-such-model", messages=MESSAGES)
    assert caught.value.status_code == 404 and "no-such-model" in caught.value.error
    with pytest.raises(ollama.ResponseError) as caught:
        client.show("no-such-model")
    assert caught.value.status_code == 404


@pytest.mark.parametrize("options, word", [({"temperature": "hot"}, "options.temperature"), ({"num_predict": 0}, "options.num_predict"),
                                           ({"num_ctx": 1_000_000}, "num_ctx")])
def test_bad_options_are_a_400_naming_them(client, options, word):
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model="gemma3-270m", messages=MESSAGES, options=options)
    assert caught.value.status_code == 400 and word in caught.value.error


def test_a_client_that_goes_away_stops_the_generation_in_the_worker(stack, default_model, member_key):
    body = {"model": "gemma3-270m", "prompt": LONG_PROMPT, "raw": True,
            "options": {"temperature": 0, "num_predict": LONG_TOKENS}}
    headers = {"Authorization": f"Bearer {member_key.raw}"}
    with httpx.stream("POST", stack.url + "/api/generate", json=body, headers=headers, timeout=30) as r:
        assert r.headers["content-type"] == "application/x-ndjson"
        lines = r.iter_lines()
        assert json.loads(next(lines))["done"] is False
    row = wait_for_row(outcome="cancelled")
    assert row.endpoint == "ollama.generate" and row.completion_tokens < 100
    # The worker is free: a short request is answered at once, not after the long one's minute.
    r = httpx.post(stack.url + "/api/generate", headers=headers, timeout=NEXT_DEADLINE,
                   json={"model": "gemma3-270m", "prompt": "Hi", "stream": False, "options": {"num_predict": 3}})
    assert r.json()["eval_count"] <= 3


def test_it_lists_shows_and_reports_loaded_models(client):
    tags = client.list()
    assert [m.model for m in tags.models] == ["gemma3-270m"]
    model = tags.models[0]
    assert model.size > 200_000_000 and model.digest.startswith("a5fd3b62")
    assert model.details.format == "gguf" and model.details.family == "gemma3"
    assert model.details.quantization_level
    shown = client.show("gemma3-270m:latest")
    assert shown.details.family == "gemma3" and shown.modelinfo["general.architecture"] == "gemma3"
    assert "temperature" in shown.parameters
    assert [m.model for m in client.ps().models] == ["gemma3-270m"]


def test_it_reports_a_version_without_a_key(stack):
    r = httpx.get(stack.url + "/api/version")
    assert r.status_code == 200 and r.json()["version"]


def test_it_embeds_a_list_of_inputs(client):
    r = client.embed(model="gemma3-270m", input=["hello world", "the cat sat"])
    assert len(r.embeddings) == 2 and len(r.embeddings[0]) == 640
    assert r.embeddings[0] != r.embeddings[1]
    assert wait_for_row(endpoint="ollama.embed").prompt_tokens == r.prompt_eval_count > 0


def test_an_admin_pulls_a_model_with_ollamas_progress_stream(stack, admin, file_server):
    url, _ = serve_gguf(file_server, "models/tiny.gguf", seed=21)
    key = create_api_key(user=admin, name="ops")
    client = ollama.Client(host=stack.url, headers={"Authorization": f"Bearer {key.raw}"}, timeout=120)
    lines = list(client.pull(url, stream=True))
    assert lines[0].status == "pulling manifest"
    assert lines[-1].status == "success"
    assert "tiny" in [m.model for m in client.list().models]


def test_a_member_cannot_pull(client, file_server):
    url, _ = serve_gguf(file_server, "models/tiny.gguf", seed=22)
    with pytest.raises(ollama.ResponseError) as caught:
        client.pull(url)
    assert caught.value.status_code == 403
