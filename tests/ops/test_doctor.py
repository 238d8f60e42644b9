"""`lanthorn doctor`: each row of the troubleshooting table, failing with its fix and passing."""

import json
import os
import socket
import subprocess
import sys

import pytest

from core.redis import redis_client
from core.workers import beat, forget
from lanthorn import doctor
from registry import services
from tests.registry.ggufs import write_tiny_gguf

pytestmark = pytest.mark.django_db(transaction=True)

STAMP = ("0.3.36 -DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF "
         "-DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON")


@pytest.fixture
def models(home):
    """Two small models, alpha and beta, in the test's own blob store."""
    return {name: services.import_file(name=name, path=write_tiny_gguf(home / f"{name}.gguf", seed=i))
            for i, name in enumerate(("alpha", "beta"))}


@pytest.fixture
def own_redis(stack, settings):
    """The stack's Redis in a database nobody else uses (no worker of the stack's in it). Ask for
    it after `models`, whose `home` points Redis nowhere."""
    base, _, db = stack.redis_url.rpartition("/")
    settings.REDIS_URL = f"{base}/{(int(db or 0) + 2) % 16}"
    redis_client.cache_clear()
    redis_client().flushdb()
    yield redis_client()
    redis_client().flushdb()
    redis_client.cache_clear()


def failing(checks):
    return [c for c in checks if not c.ok]


def test_it_names_the_variable_when_the_port_is_taken_by_another_program():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        [check] = doctor.check_port(host="127.0.0.1", port=s.getsockname()[1])
    assert not check.ok
    assert "LANTHORN_PORT" in check.fix


def test_it_passes_the_port_when_lanthorn_answers_on_it(stack):
    port = int(stack.url.rsplit(":", 1)[1])
    [check] = doctor.check_port(host="127.0.0.1", port=port)
    assert check.ok, check.message


def test_it_says_redis_is_unreachable_with_the_fix(home):
    [check] = doctor.check_redis()
    assert not check.ok
    assert "does not answer" in check.message and "REDIS_URL" in check.fix


def test_it_finds_a_redis_shared_with_another_installation(own_redis):
    beat(worker="elsewhere:1", installation="another-database")
    [check] = doctor.check_redis()
    assert not check.ok
    assert "elsewhere:1" in check.message and "REDIS_URL" in check.fix


def test_it_passes_a_redis_used_by_this_installation_only(own_redis):
    beat(worker="here:1")
    [check] = doctor.check_redis()
    assert check.ok, check.message


def test_it_says_no_worker_is_running(models, own_redis):
    [check] = doctor.check_workers()
    assert not check.ok
    assert "lanthorn worker" in check.fix


def test_it_names_the_model_without_a_worker(models, own_redis):
    beat(worker="here:1", models=["alpha"])
    found = {c.name: c for c in doctor.check_workers()}
    assert found["worker for alpha"].ok
    assert not found["worker for beta"].ok
    assert "--models beta" in found["worker for beta"].fix
    forget(worker="here:1", models=["alpha"])


def test_it_finds_a_queue_backing_up(models, own_redis):
    own_redis.rpush("model.beta", *[b"job"] * 3)
    [check] = doctor.check_queues(backlog=2)
    assert not check.ok and check.name == "queue of beta"
    assert "--slots" in check.fix
    assert doctor.check_queues(backlog=5)[0].ok


def test_it_finds_too_little_disk_for_the_blob_store(models):
    assert not doctor.check_disk(free=10_000)[0].ok
    assert doctor.check_disk(free=10**13)[0].ok


def test_it_finds_slow_storage_and_measures_the_real_one(models):
    [slow] = doctor.check_storage(rate=40e6)
    assert not slow.ok and "SSD" in slow.fix
    [real] = doctor.check_storage()
    assert "MB/s" in real.message


def test_it_finds_a_locale_or_terminal_that_is_not_utf8():
    [check] = doctor.check_encoding(preferred="ANSI_X3.4-1968", terminal="ascii")
    assert not check.ok and "LANG=C.UTF-8" in check.fix
    assert doctor.check_encoding(preferred="UTF-8", terminal="utf-8")[0].ok


def test_it_finds_too_little_memory_for_a_model(models):
    found = doctor.check_memory(available=1_000_000)
    assert [c.ok for c in found] == [False, False]
    assert "n_ctx" in found[0].fix
    assert all(c.ok for c in doctor.check_memory(available=10**12))


def test_it_finds_a_build_this_cpu_cannot_run():
    [check] = doctor.check_cpu(flags={"avx", "avx2", "fma", "f16c"}, stamp=STAMP)
    assert not check.ok and "AVX512" in check.message
    assert "install-llama-cpp.sh" in check.fix


def test_it_finds_amx_with_a_build_that_is_not_lanthorns():
    [check] = doctor.check_cpu(flags={"avx2", "amx_tile", "amx_int8"}, stamp=None)
    assert not check.ok and "AMX" in check.message


def test_it_passes_a_build_made_for_this_cpu():
    flags = {"avx", "avx2", "fma", "f16c", "avx512f", "amx_tile"}
    assert doctor.check_cpu(flags=flags, stamp=STAMP)[0].ok


def test_it_finds_a_damaged_model_file(models):
    path = models["beta"].path
    path.chmod(0o644)
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    found = {c.name: c for c in doctor.check_integrity()}
    assert found["integrity of alpha:1"].ok
    assert not found["integrity of beta:1"].ok
    assert "lanthorn check beta:1" in found["integrity of beta:1"].fix


def run_cli(*args, **env):
    return subprocess.run([sys.executable, "-m", "lanthorn.cli", "doctor", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **env})


def test_it_exits_non_zero_and_reports_json_when_a_check_fails():
    r = run_cli("--json", "--check", "redis", REDIS_URL="redis://127.0.0.1:1/0")
    assert r.returncode == 1, r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] is False
    assert report["checks"][0]["name"] == "redis" and report["checks"][0]["fix"]


def test_it_exits_zero_when_every_check_passes():
    r = run_cli("--check", "encoding", LANG="C.UTF-8", LC_ALL="C.UTF-8", PYTHONIOENCODING="utf-8")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "All 1 checks passed." in r.stdout
