"""Pulls from another Lanthorn (`lanthorn://HOST:PORT/MODEL[:VERSION]`): a second server with its
own home and database holds the default model as version 1 and the same file with a fixed chat
template as version 2; the pulling side is this test's store (a fresh one per test) or the
stack's worker."""

import time

import httpx
import pytest

from registry import blobstore, services
from registry.models import Model, Pull
from tests.registry.peer import start_peer


@pytest.fixture(scope="module")
def peer(stack, tmp_path_factory):
    peer = start_peer(tmp_path_factory.mktemp("peer"), redis_url=stack.redis_url)
    yield peer
    peer.stop()


@pytest.fixture
def fresh_store(settings, tmp_path):
    """An empty blob store; the pulls name the model `peer-gemma` (the session's database has a
    `gemma3-270m` already)."""
    settings.LANTHORN_HOME = tmp_path
    return tmp_path


def pull(source: str, *, key: str, name: str = "peer-gemma") -> Pull:
    return services.run_pull(pull_id=services.start_pull(source=source, name=name, enqueue=False).pk,
                             remote_key=key)


def peer_manifest(peer, version: int) -> dict:
    r = httpx.get(f"{peer.url}/registry/v1/models/gemma3-270m/manifest", params={"version": version},
                  headers={"Authorization": f"Bearer {peer.key}"})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.django_db
def test_it_pulls_a_model_from_another_lanthorn(peer, fresh_store):
    result = pull(f"lanthorn://{peer.address}/gemma3-270m:1", key=peer.key)
    assert result.status == Pull.DONE, result.error
    version = result.version
    assert version.digest == peer_manifest(peer, 1)["digest"]
    assert blobstore.sha256_file(version.path) == version.digest
    assert result.transferred_bytes == version.size  # nothing was held locally
    assert version.source == f"lanthorn://{peer.address}/gemma3-270m:1"
    assert Model.objects.get(name="peer-gemma").temperature == 0.7  # the peer's load config came along


@pytest.mark.django_db
def test_a_new_version_moves_only_the_chunks_that_changed(peer, fresh_store):
    assert pull(f"lanthorn://{peer.address}/gemma3-270m:1", key=peer.key).status == Pull.DONE
    result = pull(f"lanthorn://{peer.address}/gemma3-270m", key=peer.key)  # the peer's active: 2
    assert result.status == Pull.DONE, result.error
    version = result.version
    assert version.number == 2 and version.is_active
    assert version.digest == peer_manifest(peer, 2)["digest"]
    assert blobstore.sha256_file(version.path) == version.digest
    assert "<start_of_turn>" in version.chat_template
    assert 0 < result.transferred_bytes < 0.02 * version.size


@pytest.mark.django_db
def test_it_refuses_to_pull_with_a_wrong_key(peer, fresh_store):
    result = pull(f"lanthorn://{peer.address}/gemma3-270m", key="lt-not-a-key")
    assert result.status == Pull.FAILED
    assert "API key" in result.error
    assert not Model.objects.filter(name="peer-gemma").exists()


@pytest.mark.django_db
def test_it_says_when_the_peer_lacks_the_version(peer, fresh_store):
    result = pull(f"lanthorn://{peer.address}/gemma3-270m:9", key=peer.key)
    assert result.status == Pull.FAILED
    assert "has no model gemma3-270m:9" in result.error


@pytest.mark.django_db
def test_a_failed_differential_pull_leaves_the_active_version(peer, fresh_store, monkeypatch):
    assert pull(f"lanthorn://{peer.address}/gemma3-270m:1", key=peer.key).status == Pull.DONE
    monkeypatch.setattr(blobstore, "free_bytes", lambda: 1000)  # a full disk; the only thing faked
    result = pull(f"lanthorn://{peer.address}/gemma3-270m:2", key=peer.key)
    assert result.status == Pull.FAILED
    assert "disk" in result.error
    model = Model.objects.get(name="peer-gemma")
    assert model.active_version.number == 1
    assert blobstore.sha256_file(model.active_version.path) == model.active_version.digest


@pytest.mark.django_db(transaction=True)
def test_a_worker_pulls_from_another_lanthorn_and_serves_the_new_version(peer, default_model, admin, stack):
    from console.services import create_api_key

    key = create_api_key(user=admin, name="admin").raw
    with httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
        r = client.post("/api/pulls", json={"source": f"lanthorn://{peer.address}/gemma3-270m:2",
                                            "api_key": peer.key})
        assert r.status_code == 202, r.text
        pull_id = r.json()["id"]
        deadline = time.monotonic() + 60
        while (job := client.get(f"/api/pulls/{pull_id}").json())["status"] not in ("done", "failed"):
            assert time.monotonic() < deadline, job
            time.sleep(0.3)
        assert job["status"] == "done", job["error"]
        assert job["version"] == 2
        assert job["transferred_bytes"] < 0.02 * job["total_bytes"]
        digest = peer_manifest(peer, 2)["digest"]
        r = client.post("/v1/chat/completions", json={"model": "gemma3-270m", "max_tokens": 4, "temperature": 0,
                                                      "messages": [{"role": "user", "content": "Hi"}]})
        assert r.status_code == 200, r.text
        assert r.json()["system_fingerprint"] == f"lanthorn-{digest[:12]}"


@pytest.mark.django_db
def test_it_refuses_a_peer_file_other_than_the_sha256_asked_for(peer, fresh_store):
    job = services.start_pull(source=f"lanthorn://{peer.address}/gemma3-270m:2", name="peer-gemma",
                              sha256="0" * 64, enqueue=False)
    result = services.run_pull(pull_id=job.pk, remote_key=peer.key)
    assert result.status == Pull.FAILED
    assert result.error.startswith("sha256 mismatch: expected " + "0" * 64)
    assert not Model.objects.filter(name="peer-gemma").exists()
