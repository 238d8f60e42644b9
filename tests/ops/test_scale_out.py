"""Scale-out: workers on other hosts (here: other processes with LANTHORN_HOMEs of their own)
serve the models they are given, behind one web process. A worker whose blob store lacks a
model's file pulls it from the web host (`lanthorn://`)."""

import time

import httpx
import pytest
import redis

from lanthorn import processes, redis_server
from registry import services
from tests.inference.helpers import chat

pytestmark = pytest.mark.django_db(transaction=True)


def _other_db(url: str) -> str:
    """The stack's Redis, in another database: the stack's own worker (which serves every model)
    must not take these requests."""
    base, _, db = url.rpartition("/")
    return f"{base}/{(int(db or 0) + 1) % 16}"


def wait_served(client: httpx.Client, model: str, timeout: float = 180) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = client.get("/api/workers").json()["workers"]
        if any(model in w["models"] for w in workers):
            return workers
        time.sleep(0.5)
    raise AssertionError(f"no worker announced {model} in {timeout:.0f} s")


@pytest.fixture
def cluster(stack, default_model, member_key, tmp_path):
    """One web process and a way to start model workers, each with a home of its own."""
    path = default_model.active_version.path
    services.import_file(name="alpha", path=path)
    services.import_file(name="beta", path=path)
    redis_url = _other_db(stack.redis_url)
    redis.Redis.from_url(redis_url).flushdb()
    env = {**stack.env, "REDIS_URL": redis_url}
    port = redis_server.free_port()
    url = f"http://127.0.0.1:{port}"
    procs = {"web": processes.start_server(host="127.0.0.1", port=port, env=env)}

    def start(name: str, model: str):
        home = tmp_path / name
        home.mkdir(exist_ok=True)
        procs[name] = processes.start_worker(
            env={**env, "LANTHORN_HOME": str(home), "LANTHORN_PEER": url, "LANTHORN_REMOTE_KEY": member_key.raw},
            loglevel="WARNING", models=[model])

    try:
        processes.wait_healthy(url, [procs["web"]], timeout=60, need_worker=False)
        with httpx.Client(base_url=url, timeout=60,
                          headers={"Authorization": f"Bearer {member_key.raw}"}) as client:
            yield client, start, procs, tmp_path
    finally:
        processes.stop(list(procs.values()))


def test_it_serves_each_model_from_its_own_worker_and_only_the_stopped_ones_model_goes(cluster):
    client, start, procs, homes = cluster
    start("worker-a", "alpha")
    start("worker-b", "beta")
    wait_served(client, "alpha")
    workers = wait_served(client, "beta")
    assert sorted(m for w in workers for m in w["models"]) == ["alpha", "beta"]
    assert all(w["host"] and w["slots"] == 4 for w in workers)
    # Each worker pulled the file into its own store from the web host.
    assert list((homes / "worker-b" / "blobs").glob("sha256-*"))
    for model in ("alpha", "beta"):
        r = client.post("/v1/chat/completions", json={**chat("Hi", max_tokens=3), "model": model})
        assert r.status_code == 200, r.text

    processes.stop([procs.pop("worker-b")])

    r = client.post("/v1/chat/completions", json={**chat("Hi", max_tokens=3), "model": "beta"})
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "model_unavailable"
    assert int(r.headers["Retry-After"]) > 0
    assert r.headers["X-Request-Id"]
    r = client.post("/v1/chat/completions", json={**chat("Hi", max_tokens=3), "model": "alpha"})
    assert r.status_code == 200, r.text

    start("worker-b", "beta")
    wait_served(client, "beta")
    r = client.post("/v1/chat/completions", json={**chat("Hi", max_tokens=3), "model": "beta"})
    assert r.status_code == 200, r.text
