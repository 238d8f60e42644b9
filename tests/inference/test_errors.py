"""Bad requests get OpenAI's error object and still leave a usage row."""

import httpx
import pytest

from console.models import UsageRecord
from console.services import revoke_api_key
from tests.inference.helpers import chat

pytestmark = pytest.mark.django_db(transaction=True)


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    return error


def test_it_rejects_a_request_without_a_key(stack, default_model):
    r = httpx.post(stack.url + "/v1/chat/completions", json=chat("hi"))
    assert error_of(r, 401)["code"] == "invalid_api_key"


def test_it_rejects_a_wrong_key(stack, default_model):
    r = httpx.post(stack.url + "/v1/chat/completions", json=chat("hi"),
                   headers={"Authorization": "Bearer lt-not-a-real-key"})
    assert error_of(r, 401)["code"] == "invalid_api_key"
    assert not UsageRecord.objects.exists()  # counted, not recorded (tests/hardening)


def test_it_rejects_revoked_key(api, member_key):
    revoke_api_key(key=member_key.key)
    error = error_of(api.post("/v1/chat/completions", json=chat("hi")), 401)
    assert error["code"] == "invalid_api_key"
    assert "revoked" in error["message"]


def test_it_rejects_a_key_revoked_after_it_was_used(api, member_key):
    # The web processes keep copies of the keys they checked (core.memo); a revocation ends them.
    for _ in range(4):
        assert api.get("/v1/models").status_code == 200
    revoke_api_key(key=member_key.key)
    for _ in range(4):
        assert "revoked" in error_of(api.post("/v1/chat/completions", json=chat("hi")), 401)["message"]


def test_it_returns_404_for_an_unknown_model(api, member_key):
    error = error_of(api.post("/v1/chat/completions", json={**chat("hi"), "model": "gpt-4"}), 404)
    assert error["code"] == "model_not_found"
    assert error["param"] == "model"
    row = UsageRecord.objects.get()
    assert (row.status_code, row.model_name, row.api_key) == (404, "gpt-4", member_key.key)


@pytest.mark.parametrize("change, param", [
    ({"max_tokens": -5}, "max_tokens"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": "5"}, "max_tokens"),
    ({"temperature": 2.5}, "temperature"),
    ({"temperature": -0.1}, "temperature"),
    ({"temperature": "hot"}, "temperature"),
    ({"top_p": 1.5}, "top_p"),
    ({"top_k": -1}, "top_k"),
    ({"messages": []}, "messages"),
    ({"messages": "hello"}, "messages"),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role"),
    ({"stream": "yes"}, "stream"),
    ({"stop": 5}, "stop"),
    ({"n": 2}, "n"),
    ({"model": 7}, "model"),
])
def test_it_rejects_a_bad_parameter(api, change, param):
    error = error_of(api.post("/v1/chat/completions", json={**chat("hi"), **change}), 400)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_it_rejects_a_body_that_is_not_json(api):
    error = error_of(api.post("/v1/chat/completions", content=b"{not json"), 400)
    assert "JSON" in error["message"]


def test_it_rejects_a_completion_without_prompt(api):
    error = error_of(api.post("/v1/completions", json={"model": "gemma3-270m"}), 400)
    assert error["param"] == "prompt"


def test_it_rejects_a_prompt_longer_than_the_context(api, default_model):
    assert default_model.n_ctx == 4096
    long_prompt = "word " * 5000
    r = api.post("/v1/completions", json={"model": "gemma3-270m", "prompt": long_prompt, "stream": True})
    error = error_of(r, 400)
    assert error["code"] == "context_length_exceeded"


@pytest.mark.parametrize("change, param", [
    ({"messages": [{"role": "user", "content": "hi"}] * 513}, "messages"),
    ({"messages": [{"role": "user", "content": "x" * 262_145}]}, "messages.0.content"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "x" * 262_145}]}]}, "messages.0.content"),
    ({"stop": ["y" * 257]}, "stop"),
    ({"user": "u" * 257}, "user"),
])
def test_it_rejects_a_request_over_a_cap(api, change, param):
    error = error_of(api.post("/v1/chat/completions", json={**chat("hi"), **change}), 400)
    assert error["param"] == param


def test_it_rejects_a_prompt_over_the_size_cap(api):
    r = api.post("/v1/completions", json={"model": "gemma3-270m", "prompt": "x" * 262_145})
    assert error_of(r, 400)["param"] == "prompt"
