"""`lanthorn shell`: a terminal chat streamed through the same queue, worker and channel layer
as the API."""

import subprocess
import sys
from pathlib import Path

import pytest

from console.models import UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)

LANTHORN = str(Path(sys.executable).with_name("lanthorn"))


def shell(stack, stdin: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([LANTHORN, "shell", *args], input=stdin, env=stack.env, capture_output=True,
                          text=True, timeout=120)


def test_the_shell_streams_an_answer_through_a_worker(stack, default_model, admin):
    result = shell(stack, "Name three colours.\n/bye\n", "gemma3-270m")
    assert result.returncode == 0, result.stderr
    answer = result.stdout.split(">>> ")[1]
    assert len(answer.strip()) > 3
    row = UsageRecord.objects.get(endpoint="cli.shell")
    assert row.user == admin and row.outcome == "ok" and row.completion_tokens > 0
    assert row.version_digest == default_model.active_version.digest


def test_the_shell_fails_with_one_line_for_an_unknown_model(stack, default_model, admin):
    result = shell(stack, "", "no-such-model")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["lanthorn: no model named 'no-such-model'"]
