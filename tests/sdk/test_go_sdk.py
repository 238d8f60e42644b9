"""The Go SDK's own suite (`go test ./...`) and example against a live Lanthorn."""

import os
import shutil
import subprocess

import pytest

from console.models import UsageRecord
from tests.sdk.conftest import SDK

pytestmark = [pytest.mark.django_db(transaction=True),
              pytest.mark.skipif(not shutil.which("go"), reason="Go is not installed (Debian: apt-get install "
                                 "golang-go): the Go SDK's tests are skipped")]


def go(live_env, *args):
    return subprocess.run(["go", *args], cwd=SDK / "go", env={**os.environ, **live_env}, capture_output=True,
                          text=True, timeout=600)


def test_it_passes_the_go_sdk_suite_against_a_live_server(live_env):
    result = go(live_env, "test", "-count=1", "-v", "./...")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "--- PASS: TestItStreamsPiecesThatMakeTheAnswer" in result.stdout
    assert "--- SKIP" not in result.stdout


def test_it_runs_the_go_example(live_env):
    result = go(live_env, "run", "./examples/stream")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert UsageRecord.objects.filter(endpoint="/v1/completions", outcome="ok").count() == 1
