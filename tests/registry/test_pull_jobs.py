"""Pulls as jobs: POST /api/pulls queues one, the real Celery worker runs it, GET /api/pulls/ID
and its NDJSON stream show it; a pull whose worker was killed resumes from the bytes on disk.

The worker's LANTHORN_HOME is the session's (settings.LANTHORN_HOME): these tests leave it be.
"""

import hashlib
import json
import random
import time

import httpx
import pytest

from django.urls import reverse

from console.services import create_api_key
from registry import blobstore
from registry.models import Pull
from tests.registry.ggufs import write_tiny_gguf

pytestmark = pytest.mark.django_db(transaction=True)

MB = 1024 * 1024


@pytest.fixture
def admin_api(stack, admin):
    key = create_api_key(user=admin, name="ops")
    with httpx.Client(base_url=stack.url, timeout=30, headers={"Authorization": f"Bearer {key.raw}"}) as client:
        yield client


def serve_gguf(server, relpath: str, *, size_mb: float = 1, seed: int = 0) -> tuple[str, str]:
    """Puts a tiny GGUF on the file server; returns its URL and sha256."""
    path = server.root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    write_tiny_gguf(path, size_mb=size_mb, seed=seed)
    return server.url_for(relpath), hashlib.sha256(path.read_bytes()).hexdigest()


def start(client, **body) -> dict:
    r = client.post("/api/pulls", json=body)
    assert r.status_code == 202, r.text
    return r.json()


def wait_until(client, pull_id: str, done, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/api/pulls/{pull_id}").json()
        if done(job):
            return job
        assert time.monotonic() < deadline, f"pull still {job['status']}: {job}"
        time.sleep(0.1)


def finished(job: dict) -> bool:
    return job["status"] in ("done", "failed", "cancelled")


def test_an_admin_pull_runs_on_the_worker_and_the_model_is_then_served(admin_api, file_server):
    url, digest = serve_gguf(file_server, "models/tiny.gguf", seed=11)

    job = start(admin_api, source=url, name="tiny")
    assert job["status"] == "queued"
    assert job["model"] == "tiny"
    done = wait_until(admin_api, job["id"], finished)

    assert (done["status"], done["error"], done["version"]) == ("done", "", 1)
    assert "tiny" in [m["id"] for m in admin_api.get("/v1/models").json()["data"]]
    model = admin_api.get("/api/models/tiny").json()
    assert model["active_version"] == 1
    assert [(v["version"], v["active"], v["digest"], v["source"]) for v in model["versions"]] == [
        (1, True, f"sha256:{digest}", url)]


def stream(client, pull_id: str) -> list[dict]:
    with client.stream("GET", f"/api/pulls/{pull_id}/stream") as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/x-ndjson")
        return [json.loads(line) for line in r.iter_lines() if line]


def test_the_pull_stream_ends_with_success(admin_api, file_server):
    url, _ = serve_gguf(file_server, "models/tiny.gguf", size_mb=2, seed=12)
    file_server.fail("/models/tiny.gguf", throttle=1 * MB)  # two seconds of progress to show

    lines = stream(admin_api, start(admin_api, source=url, name="tiny")["id"])

    assert lines[-1] == {"status": "success", "model": "tiny", "version": 1}
    assert all("status" in line and "error" not in line for line in lines)
    progress = [line for line in lines if "completed" in line]
    assert progress and all(line["total"] == progress[-1]["total"] for line in progress)


def test_a_failing_pulls_stream_ends_with_its_error(admin_api, file_server):
    url = file_server.url_for("models/missing.gguf")

    lines = stream(admin_api, start(admin_api, source=url, name="tiny")["id"])

    assert lines[-1] == {"error": f"{url} was not found (HTTP 404)"}
    assert all("error" not in line for line in lines[:-1])


def test_a_member_cannot_start_a_pull(stack, member_key, file_server):
    url, _ = serve_gguf(file_server, "models/tiny.gguf")

    r = httpx.post(f"{stack.url}/api/pulls", json={"source": url},
                   headers={"Authorization": f"Bearer {member_key.raw}"})

    assert r.status_code == 403
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "permission_denied"
    assert error["message"]
    assert not Pull.objects.exists()
    assert file_server.requests == []


def test_a_pull_resumes_after_its_worker_was_killed(admin_api, stack, file_server, default_model):
    url, digest = serve_gguf(file_server, "models/big.gguf", size_mb=8, seed=13)
    file_server.fail("/models/big.gguf", throttle=1 * MB)
    first = start(admin_api, source=url, name="big")
    wait_until(admin_api, first["id"], lambda job: job["done_bytes"] > 2.5 * MB)

    try:
        stack.kill_worker(jobs=True)
        orphan = wait_until(admin_api, first["id"], finished)  # once the worker's heartbeat has lapsed
    finally:
        stack.start_worker(jobs=True)
    assert orphan["status"] == "failed"
    assert "its worker went away" in orphan["error"]
    file_server.clear_faults()
    seen = len(file_server.requests)
    second = start(admin_api, source=url, name="big")
    done = wait_until(admin_api, second["id"], finished)

    assert (done["status"], done["error"]) == ("done", "")
    resumed = [r for r in file_server.requests[seen:] if r.method == "GET"]
    assert resumed and resumed[0].range.startswith("bytes=")
    offset = int(resumed[0].range.removeprefix("bytes=").removesuffix("-"))
    assert offset >= 2 * MB
    assert done["transferred_bytes"] == done["total_bytes"] - offset
    model = admin_api.get("/api/models/big").json()
    assert model["versions"][0]["digest"] == f"sha256:{digest}"


def test_it_stops_a_cancelled_pull_in_the_worker_and_a_later_pull_resumes(admin_api, file_server, client, admin):
    # A file no earlier run stored (the session's blob store outlives a run): a stored one would
    # make the pull of its sha256 end at once.
    url, digest = serve_gguf(file_server, "models/slow.gguf", size_mb=8, seed=random.randrange(2**32))
    file_server.fail("/models/slow.gguf", throttle=1 * MB)  # eight seconds, if nobody stops it
    first = start(admin_api, source=url, name="slow", sha256=digest)
    wait_until(admin_api, first["id"], lambda job: job["done_bytes"] > 2 * MB)

    r = admin_api.post(f"/api/jobs/pull/{first['id']}/cancel")
    assert r.status_code == 202, r.text
    cancelled = wait_until(admin_api, first["id"], finished, timeout=10)

    assert (cancelled["status"], cancelled["phase"]) == ("cancelled", "cancelled")
    # The worker stopped reading: neither the server's bytes nor the partial file grow any more.
    # (What the server had already written into the closed socket's buffers is counted as sent.)
    partial = blobstore.partial_path(f"sha256-{digest}")
    kept = partial.stat().st_size
    time.sleep(1)
    sent = file_server.bytes_sent
    time.sleep(2)  # two more megabytes, had the download gone on
    assert (file_server.bytes_sent, partial.stat().st_size) == (sent, kept)
    assert 2 * MB <= kept < 8 * MB
    assert admin_api.get(f"/api/pulls/{first['id']}").json()["done_bytes"] == cancelled["done_bytes"]
    assert stream(admin_api, first["id"]) == [{"error": "the pull was cancelled"}]
    client.force_login(admin)
    page = client.get(reverse("pull-detail", args=[first["id"]]), headers={"HX-Request": "true"}).content.decode()
    assert "Cancelled at " in page and "pull it again to resume" in page and "<progress" not in page

    file_server.clear_faults()
    seen = len(file_server.requests)
    done = wait_until(admin_api, start(admin_api, source=url, name="slow", sha256=digest)["id"], finished)

    assert (done["status"], done["error"]) == ("done", "")
    resumed = [r for r in file_server.requests[seen:] if r.method == "GET"]
    assert resumed[0].range == f"bytes={kept}-"
    assert done["transferred_bytes"] == done["total_bytes"] - kept
