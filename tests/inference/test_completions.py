import pytest

from tests.inference.helpers import sse_events

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_answers_a_text_completion(api):
    r = api.post("/v1/completions", json={"model": "gemma3-270m", "prompt": "The sky is",
                                          "max_tokens": 6, "temperature": 0})
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"].strip()
    assert body["usage"]["completion_tokens"] <= 6


def test_it_streams_a_text_completion(api):
    request = {"model": "gemma3-270m", "prompt": "Once upon a time", "max_tokens": 8, "stream": True}
    with api.stream("POST", "/v1/completions", json=request) as r:
        events = sse_events(r)
    assert events[-1] == "[DONE]"
    assert all(e["object"] == "text_completion" for e in events[:-1])
    assert "".join(e["choices"][0]["text"] for e in events[:-1]).strip()


def test_it_lists_the_installed_models(api):
    body = api.get("/v1/models").json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["gemma3-270m"]


def test_it_refuses_to_list_models_without_a_key(stack, default_model):
    import httpx

    r = httpx.get(stack.url + "/v1/models")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_api_key"


def test_it_reports_ready_when_database_redis_and_a_worker_answer(stack, transactional_db):
    import httpx

    body = httpx.get(stack.url + "/readyz").json()
    assert body["status"] == "ok"
    assert body["checks"] == {"database": "ok", "redis": "ok", "workers": "ok"}
    assert body["jobs_workers"] == 1
