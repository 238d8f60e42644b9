"""Embeddings (/v1/embeddings), computed by the worker's embedding context."""

import base64
import math
import struct

import pytest
from lanthorn_sdk import LLMClient
from openai import OpenAI

from console.models import UsageRecord
from tests.doors.helpers import wait_for_row

pytestmark = pytest.mark.django_db(transaction=True)


def norm(vector) -> float:
    return math.sqrt(sum(x * x for x in vector))


def test_it_embeds_a_string_as_a_unit_vector(api, member_key):
    r = api.post("/v1/embeddings", json={"model": "gemma3-270m", "input": "The cat sat on the mat."})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list" and body["model"] == "gemma3-270m"
    [item] = body["data"]
    assert (item["object"], item["index"]) == ("embedding", 0)
    assert len(item["embedding"]) == 640 and abs(norm(item["embedding"]) - 1) < 1e-3
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 3
    row = UsageRecord.objects.get()
    assert (row.endpoint, row.outcome, row.api_key) == ("/v1/embeddings", "ok", member_key.key)
    assert row.prompt_tokens == body["usage"]["prompt_tokens"] and row.completion_tokens == 0


def test_a_list_is_embedded_in_one_batch_in_order(api):
    texts = ["The cat sat on the mat.", "Quarterly revenue rose by four percent.", "The cat sat on the mat."]
    data = api.post("/v1/embeddings", json={"model": "gemma3-270m", "input": texts}).json()["data"]
    assert [d["index"] for d in data] == [0, 1, 2]
    same = sum(a * b for a, b in zip(data[0]["embedding"], data[2]["embedding"]))
    other = sum(a * b for a, b in zip(data[0]["embedding"], data[1]["embedding"]))
    assert same > 0.999 and other < same - 0.01
    single = api.post("/v1/embeddings", json={"model": "gemma3-270m", "input": texts[1]}).json()["data"][0]
    assert sum(a * b for a, b in zip(single["embedding"], data[1]["embedding"])) > 0.999
    assert UsageRecord.objects.count() == 2


def test_base64_encoding_carries_the_same_float32_values(api):
    request = {"model": "gemma3-270m", "input": "hello"}
    floats = api.post("/v1/embeddings", json=request).json()["data"][0]["embedding"]
    encoded = api.post("/v1/embeddings", json={**request, "encoding_format": "base64"}).json()["data"][0]["embedding"]
    raw = base64.b64decode(encoded)
    decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert len(decoded) == 640
    assert max(abs(a - b) for a, b in zip(decoded, floats)) < 1e-6


def test_the_openai_client_gets_embeddings(stack, default_model, member_key):
    client = OpenAI(base_url=stack.url + "/v1", api_key=member_key.raw)
    result = client.embeddings.create(model="gemma3-270m", input=["one", "two"])
    assert [len(d.embedding) for d in result.data] == [640, 640]


@pytest.mark.parametrize("change, status, code", [
    ({"model": "no-such-model"}, 404, "model_not_found"),
    ({"input": 5}, 400, "invalid_value"),
    ({"input": []}, 400, "invalid_value"),
    ({"encoding_format": "int8"}, 400, "invalid_value"),
])
def test_bad_requests_get_an_openai_error(api, change, status, code):
    r = api.post("/v1/embeddings", json={"model": "gemma3-270m", "input": "hello", **change})
    assert r.status_code == status
    assert r.json()["error"]["code"] == code
    assert wait_for_row(endpoint="/v1/embeddings").status_code == status


def test_a_bad_key_is_refused(stack, default_model):
    import httpx

    r = httpx.post(stack.url + "/v1/embeddings", json={"model": "gemma3-270m", "input": "hi"},
                   headers={"Authorization": "Bearer lt-wrong"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"


def test_ollama_embed_gives_the_same_vectors(api):
    openai_vector = api.post("/v1/embeddings", json={"model": "gemma3-270m", "input": "hello"}).json()["data"][0]
    ollama = api.post("/api/embed", json={"model": "gemma3-270m:latest", "input": "hello"}).json()
    assert len(ollama["embeddings"]) == 1
    assert max(abs(a - b) for a, b in zip(ollama["embeddings"][0], openai_vector["embedding"])) < 1e-6
    assert wait_for_row(endpoint="ollama.embed").prompt_tokens == ollama["prompt_eval_count"]


def test_the_python_sdk_gets_embeddings(stack, default_model, member_key):
    with LLMClient(endpoint=stack.url, api_key=member_key.raw) as client:
        vectors = client.embed(["one", "two"], model="gemma3-270m")
    assert [len(v) for v in vectors] == [640, 640] and vectors[0] != vectors[1]
