"""The response cache, through the whole stack: a repeated deterministic request is answered from
Redis without the worker, says so, and leaves a usage row that says so."""

import pytest

from console.models import UsageRecord
from registry.models import Model
from tests.inference.helpers import chat, sse_events

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def cached_model(default_model):
    Model.objects.filter(pk=default_model.pk).update(cache=True, cache_ttl=60)


def test_it_answers_a_repeated_greedy_request_from_the_cache(api, cached_model):
    body = chat("Name a colour. (cache test 1)", max_tokens=8)
    first = api.post("/v1/chat/completions", json=body)
    second = api.post("/v1/chat/completions", json=body)
    assert first.status_code == second.status_code == 200
    assert "x-lanthorn-cache" not in first.headers
    assert second.headers["x-lanthorn-cache"] == "hit"
    assert second.json()["choices"] == first.json()["choices"]
    assert second.json()["usage"] == first.json()["usage"]
    rows = list(UsageRecord.objects.order_by("id").values_list("outcome", "completion_tokens"))
    assert rows == [("ok", first.json()["usage"]["completion_tokens"]),
                    ("cached", first.json()["usage"]["completion_tokens"])]


def test_it_streams_a_cached_answer(api, cached_model):
    body = chat("Name a fruit. (cache test 2)", max_tokens=8, stream=True)
    with api.stream("POST", "/v1/chat/completions", json=body) as r:
        fresh = sse_events(r)
    with api.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.headers["x-lanthorn-cache"] == "hit"
        again = sse_events(r)

    def text(events):
        return "".join(c["choices"][0]["delta"].get("content", "") for c in events[:-1] if c["choices"])

    assert text(again) == text(fresh) and text(fresh)


def test_it_does_not_cache_sampled_requests(api, cached_model):
    body = chat("Name an animal. (cache test 3)", max_tokens=4, temperature=0.9)
    api.post("/v1/chat/completions", json=body)
    assert "x-lanthorn-cache" not in api.post("/v1/chat/completions", json=body).headers


def test_a_model_can_opt_out_of_the_cache(api, default_model):
    body = chat("Name a tree. (cache test 4)", max_tokens=4)
    api.post("/v1/chat/completions", json=body)
    assert "x-lanthorn-cache" not in api.post("/v1/chat/completions", json=body).headers
