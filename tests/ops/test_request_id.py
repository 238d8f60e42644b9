"""One request id follows a request from the web process into the worker and back: it is in
both processes' (JSON) log lines, on the usage row, and in the client's X-Request-Id."""

import json

import httpx

import pytest

from console.models import UsageRecord
from tests.inference.helpers import chat

pytestmark = pytest.mark.django_db(transaction=True)


def lines_of(path) -> list[dict]:
    found = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            pass  # what is not ours (a library printing to stderr)
    return found


def test_it_follows_a_request_through_web_and_worker_logs(cluster):
    cluster.start("worker-a", "alpha")
    cluster.wait_served("alpha")

    r = cluster.client.post("/v1/chat/completions", json={**chat("Hi", max_tokens=3), "model": "alpha"})

    assert r.status_code == 200, r.text
    request_id = r.headers["X-Request-Id"]
    assert UsageRecord.objects.filter(request_id=request_id, status_code=200).exists()
    worker = [line for line in lines_of(cluster.log("worker-a")) if line.get("request_id") == request_id]
    web = [line for line in lines_of(cluster.log("web")) if line.get("request_id") == request_id]
    assert any("generating with alpha" in line["message"] for line in worker), worker
    assert any("200" in line["message"] for line in web), web


def test_it_returns_a_request_id_on_other_api_responses(stack, member_key):
    r = httpx.get(stack.url + "/api/workers", headers={"Authorization": f"Bearer {member_key.raw}"})

    assert r.status_code == 200
    assert len(r.headers["X-Request-Id"]) == 32
