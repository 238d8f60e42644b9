"""Scale-out: workers on other hosts (here: other processes with LANTHORN_HOMEs of their own)
serve the models they are given, behind one web process. A worker whose blob store lacks a
model's file pulls it from the web host (`lanthorn://`)."""

import pytest

from registry.models import Model
from tests.inference.helpers import chat

pytestmark = pytest.mark.django_db(transaction=True)


def ask(cluster, model: str):
    return cluster.client.post("/v1/chat/completions", json={**chat("Hi", max_tokens=3), "model": model})


def test_it_serves_each_model_from_its_own_worker_and_only_the_stopped_ones_model_goes(cluster):
    cluster.start("worker-a", "alpha")
    cluster.start("worker-b", "beta")
    cluster.wait_served("alpha")
    workers = cluster.wait_served("beta")
    assert sorted(m for w in workers for m in w["models"]) == ["alpha", "beta"]
    # Each takes its model's batch slots at once, plus two threads for other jobs.
    slots = Model._meta.get_field("slots").default + 2
    assert all(w["host"] and w["slots"] == slots for w in workers)
    # Each worker pulled the file into its own store from the web host.
    assert list((cluster.root / "worker-b" / "blobs").glob("sha256-*"))
    for model in ("alpha", "beta"):
        r = ask(cluster, model)
        assert r.status_code == 200, r.text

    cluster.stop("worker-b")

    r = ask(cluster, "beta")
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "model_unavailable"
    assert int(r.headers["Retry-After"]) > 0
    r = ask(cluster, "alpha")
    assert r.status_code == 200, r.text

    cluster.start("worker-b", "beta")
    cluster.wait_served("beta")
    r = ask(cluster, "beta")
    assert r.status_code == 200, r.text
