"""The Java SDK's own suite (`sdk/java/build.sh`) and example against a live Lanthorn."""

import os
import shutil
import subprocess

import pytest

from console.models import UsageRecord
from tests.sdk.conftest import SDK

pytestmark = [pytest.mark.django_db(transaction=True),
              pytest.mark.skipif(not shutil.which("javac"), reason="no JDK (Debian: apt-get install "
                                 "openjdk-17-jdk-headless): the Java SDK's tests are skipped")]


def run(live_env, script):
    return subprocess.run([str(SDK / "java" / script)], env={**os.environ, **live_env}, capture_output=True,
                          text=True, timeout=600)


def test_it_passes_the_java_sdk_suite_against_a_live_server(live_env):
    result = run(live_env, "build.sh")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "PASS it streams pieces that make the answer" in result.stdout
    assert "SKIP" not in result.stdout and " 0 failed" in result.stdout


def test_it_runs_the_java_example(live_env):
    result = run(live_env, "run-example.sh")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert UsageRecord.objects.filter(endpoint="/v1/completions", outcome="ok").count() == 1
