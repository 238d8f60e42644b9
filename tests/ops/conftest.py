"""A small cluster on the stack's Redis (in a database of its own, so that the stack's worker,
which serves every model, takes none of its requests) and the test database: one web process,
and model workers started on demand, each with a LANTHORN_HOME of its own (as on another host).
Every process logs JSON lines to a file of its own."""

import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis

from lanthorn import processes, redis_server
from registry import services


def _other_db(url: str) -> str:
    base, _, db = url.rpartition("/")
    return f"{base}/{(int(db or 0) + 1) % 16}"


@dataclass
class Cluster:
    url: str
    client: httpx.Client
    env: dict
    root: Path
    key: str
    procs: dict = field(default_factory=dict)

    def start(self, name: str, model: str) -> None:
        home = self.root / name
        home.mkdir(exist_ok=True)
        env = {**self.env, "LANTHORN_HOME": str(home), "LANTHORN_PEER": self.url, "LANTHORN_REMOTE_KEY": self.key}
        with open(self.log(name), "ab") as log:
            self.procs[name] = processes.start_worker(env=env, loglevel="INFO", models=[model], stderr=log)

    def stop(self, name: str) -> None:
        processes.stop([self.procs.pop(name)])

    def log(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def wait_served(self, model: str, timeout: float = 180) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            workers = self.client.get("/api/workers").json()["workers"]
            if any(model in w["models"] for w in workers):
                return workers
            time.sleep(0.5)
        raise AssertionError(f"no worker announced {model} in {timeout:.0f} s")


@pytest.fixture
def cluster(stack, default_model, member_key, tmp_path):
    path = default_model.active_version.path
    services.import_file(name="alpha", path=path)
    services.import_file(name="beta", path=path)
    redis_url = _other_db(stack.redis_url)
    redis.Redis.from_url(redis_url).flushdb()
    env = {**stack.env, "REDIS_URL": redis_url, "LANTHORN_LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}
    port = redis_server.free_port()
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {member_key.raw}"}) as client:
        cluster = Cluster(url=url, client=client, env=env, root=tmp_path, key=member_key.raw)
        try:
            with open(cluster.log("web"), "ab") as log:
                cluster.procs["web"] = processes.start_server(host="127.0.0.1", port=port, env=env, stderr=log)
            processes.wait_healthy(url, [cluster.procs["web"]], timeout=60, need_worker=False)
            yield cluster
        finally:
            processes.stop(list(cluster.procs.values()))
