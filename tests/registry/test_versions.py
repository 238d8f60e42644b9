"""Versions of a model, in-process through registry.services: import, rollback, integrity
checks, removal and garbage collection, on a blob store under the test's own directory."""

import hashlib

import pytest

from registry import blobstore, catalog, services
from registry.models import Model, ModelVersion
from tests.registry.ggufs import write_tiny_gguf

pytestmark = pytest.mark.django_db



def gguf(home, seed: int):
    return write_tiny_gguf(home / f"tiny-{seed}.gguf", size_mb=0.5, seed=seed)


def add(home, seed: int, name: str = "tiny") -> ModelVersion:
    return services.import_file(name=name, path=gguf(home, seed))


def active_number(name: str = "tiny") -> int | None:
    model = Model.objects.select_related("active_version").get(name=name)
    return model.active_version.number if model.active_version else None


def flip_a_byte(version: ModelVersion, at: int = -100) -> None:
    data = bytearray(version.path.read_bytes())
    data[at] ^= 0xFF
    version.path.write_bytes(bytes(data))


# Importing.

def test_an_import_adds_version_1_with_the_files_metadata(home):
    path = gguf(home, seed=1)

    version = services.import_file(name="tiny", path=path)

    data = path.read_bytes()
    assert version.number == 1
    assert version.digest == hashlib.sha256(data).hexdigest()
    assert version.size == len(data)
    assert version.source == str(path)
    assert version.architecture == "llama"
    assert version.quantization == "ALL_F32"
    assert version.context_length == 2048
    assert version.parameter_count == 4 * (len(data) // (4 * 256 * 4)) * 256
    assert version.path.read_bytes() == data


def test_an_import_makes_the_new_version_active(home):
    add(home, seed=1)

    second = add(home, seed=2)

    assert second.number == 2
    assert active_number() == 2


def test_importing_the_active_file_again_adds_no_version(home):
    first = add(home, seed=1)

    again = add(home, seed=1)

    assert again.pk == first.pk
    assert list(ModelVersion.objects.values_list("number", flat=True)) == [1]


def test_an_import_of_a_file_that_is_not_gguf_is_refused(home):
    path = home / "notes.gguf"
    path.write_text("not a model")

    with pytest.raises(services.RegistryError) as raised:
        services.import_file(name="tiny", path=path)

    assert raised.value.code == "not_gguf"
    assert "not a valid GGUF file" in raised.value.message
    assert not Model.objects.filter(name="tiny").exists()


# Rollback.

def test_rollback_activates_the_version_before_the_active_one(home):
    add(home, seed=1)
    add(home, seed=2)
    add(home, seed=3)

    version = services.rollback(name="tiny")

    assert version.number == 2
    assert active_number() == 2


def test_rollback_to_a_number_activates_that_version(home):
    add(home, seed=1)
    add(home, seed=2)
    add(home, seed=3)

    version = services.rollback(name="tiny", number=1)

    assert version.number == 1
    assert active_number() == 1


def test_rollback_with_no_older_version_is_refused(home):
    add(home, seed=1)

    with pytest.raises(services.RegistryError) as raised:
        services.rollback(name="tiny")

    assert raised.value.status == 409
    assert "no older version" in raised.value.message
    assert active_number() == 1


def test_rollback_to_a_version_that_does_not_exist_names_the_versions(home):
    add(home, seed=1)
    add(home, seed=2)

    with pytest.raises(services.RegistryError) as raised:
        services.rollback(name="tiny", number=7)

    assert raised.value.code == "version_not_found"
    assert "versions: 1, 2" in raised.value.message
    assert active_number() == 2


def test_rollback_refuses_a_version_that_failed_its_check(home):
    first = add(home, seed=1)
    add(home, seed=2)
    flip_a_byte(first)
    services.check_version(version=first)

    with pytest.raises(services.RegistryError) as raised:
        services.rollback(name="tiny", number=1)

    assert raised.value.code == "version_failed_check"
    assert active_number() == 2


def test_rollback_without_a_number_passes_over_a_version_that_failed_its_check(home):
    add(home, seed=1)
    second = add(home, seed=2)
    add(home, seed=3)
    flip_a_byte(second)
    services.check_version(version=second)

    version = services.rollback(name="tiny")

    assert version.number == 1
    assert active_number() == 1


# Integrity checks.

def test_check_says_ok_for_an_intact_blob(home):
    version = add(home, seed=1)

    result = services.check_version(version=version)

    assert result.ok
    assert result.problems == []
    version.refresh_from_db()
    assert version.check_problem == ""
    assert version.checked_at is not None


def test_check_reports_a_sha256_mismatch_after_a_byte_flips(home):
    version = add(home, seed=1)
    flip_a_byte(version)
    actual = hashlib.sha256(version.path.read_bytes()).hexdigest()

    result = services.check_version(version=version)

    assert not result.ok
    assert result.problems == [f"sha256 is {actual}, expected {version.digest}"]
    version.refresh_from_db()
    assert version.check_problem == result.problems[0]


def test_check_reports_a_truncated_blob_as_a_structure_problem(home):
    version = add(home, seed=1)
    with open(version.path, "r+b") as f:
        f.truncate(version.size // 2)

    result = services.check_version(version=version)

    assert not result.ok
    assert any("past the end of the file" in p for p in result.problems)
    assert any(f"the version recorded {version.size:,}" in p for p in result.problems)


def test_check_reports_a_missing_blob(home):
    version = add(home, seed=1)
    version.path.unlink()

    result = services.check_version(version=version)

    assert result.problems == [f"the file {version.path} is missing"]


def test_a_version_that_failed_its_check_cannot_be_activated(home):
    first = add(home, seed=1)
    add(home, seed=2)
    flip_a_byte(first)
    services.check_version(version=first)

    with pytest.raises(services.RegistryError) as raised:
        services.activate_version(version=first)

    assert raised.value.code == "version_failed_check"
    assert raised.value.status == 409
    assert "failed its integrity check" in raised.value.message
    assert active_number() == 2


def test_a_version_that_passes_a_new_check_can_be_activated_again(home):
    first = add(home, seed=1)
    add(home, seed=2)
    flip_a_byte(first)
    services.check_version(version=first)
    flip_a_byte(first)  # the same byte back: the file is whole again
    services.check_version(version=first)

    services.activate_version(version=first)

    assert active_number() == 1


# Removal and garbage collection.

def test_it_refuses_to_remove_the_active_version(home):
    version = add(home, seed=1)

    with pytest.raises(services.RegistryError) as raised:
        services.remove(name="tiny", number=1)

    assert raised.value.code == "version_active"
    assert raised.value.status == 409
    assert ModelVersion.objects.filter(pk=version.pk).exists()
    assert version.path.is_file()


def test_removing_an_inactive_version_deletes_it_and_its_blob(home):
    first = add(home, seed=1)
    add(home, seed=2)

    result = services.remove(name="tiny", number=1)

    assert result == {"removed": "tiny:1", "blobs_deleted": 1, "bytes_freed": first.size, "postponed": False}
    assert list(ModelVersion.objects.values_list("number", flat=True)) == [2]
    assert not first.path.exists()
    assert not blobstore.manifest_path(first.digest).exists()


def test_removing_a_version_keeps_a_blob_another_version_shares(home):
    first = add(home, seed=1)
    add(home, seed=2)
    third = add(home, seed=1)  # the same file as version 1, imported again while 2 was active

    result = services.remove(name="tiny", number=1)

    assert third.digest == first.digest
    assert result["blobs_deleted"] == 0
    assert first.path.is_file()
    assert list(ModelVersion.objects.values_list("number", flat=True)) == [2, 3]


def test_removing_a_serving_model_without_force_is_refused(home):
    version = add(home, seed=1)

    with pytest.raises(services.RegistryError) as raised:
        services.remove(name="tiny")

    assert raised.value.code == "version_active"
    assert "force the removal of the whole model" in raised.value.message
    assert Model.objects.filter(name="tiny").exists()
    assert version.path.is_file()


def test_removing_a_whole_model_with_force_deletes_its_versions_and_blobs(home):
    first = add(home, seed=1)
    second = add(home, seed=2)

    result = services.remove(name="tiny", force=True)

    assert result["removed"] == "tiny"
    assert result["blobs_deleted"] == 2
    assert not Model.objects.filter(name="tiny").exists()
    assert not ModelVersion.objects.exists()
    assert not first.path.exists() and not second.path.exists()


def test_removing_one_model_keeps_a_blob_another_model_uses(home):
    add(home, seed=1, name="tiny")
    other = add(home, seed=1, name="other")

    services.remove(name="tiny", force=True)

    assert other.path.is_file()
    assert services.check_version(version=other).ok


def test_collect_garbage_deletes_only_blobs_no_version_refers_to(home):
    kept = add(home, seed=1)
    stray_digest = "ab" * 32
    stray = blobstore.blob_path(stray_digest)
    stray.write_bytes(b"x" * 1000)
    blobstore.manifest_path(stray_digest).write_text("{}")

    result = services.collect_garbage()

    assert result == {"blobs_deleted": 1, "bytes_freed": 1000, "postponed": False}
    assert not stray.exists()
    assert not blobstore.manifest_path(stray_digest).exists()
    assert kept.path.is_file()
    assert blobstore.manifest_path(kept.digest).is_file()


def test_collect_garbage_leaves_partial_downloads_alone(home):
    partial = blobstore.partial_path("local-0123")
    partial.write_bytes(b"half a file")

    result = services.collect_garbage()

    assert result == {"blobs_deleted": 0, "bytes_freed": 0, "postponed": False}
    assert partial.read_bytes() == b"half a file"


def test_collect_garbage_waits_while_a_pull_is_storing_a_blob(home):
    stored = blobstore.blob_path("cd" * 32)
    stored.write_bytes(b"a blob whose version is not recorded yet")

    with blobstore.storing():  # what run_pull holds from its first byte to its version row
        result = services.collect_garbage()

    assert result["postponed"] is True
    assert stored.exists()
    assert services.collect_garbage()["blobs_deleted"] == 1
    assert not stored.exists()


# Pulling by catalog name.

@pytest.mark.parametrize("entry", [pytest.param(e, id=e["name"]) for e in catalog.entries()])
def test_every_catalog_name_is_accepted_as_a_pull_source(home, entry):
    pull = services.start_pull(source=entry["name"], enqueue=False)  # checks the request; fetches nothing

    assert pull.name == entry["name"]


# References.

def test_parse_ref_reads_a_name_and_a_version_number():
    assert services.parse_ref("tiny:3") == ("tiny", 3)
    assert services.parse_ref("tiny") == ("tiny", None)


def test_parse_ref_refuses_a_version_that_is_not_a_number():
    with pytest.raises(services.RegistryError) as raised:
        services.parse_ref("tiny:latest")

    assert raised.value.param == "version"
    assert "'latest' is not a version number" in raised.value.message
