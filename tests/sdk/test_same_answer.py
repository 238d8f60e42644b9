"""The SDKs' examples give the answer the REST API gives to the same greedy request (the
examples stream "The three primary colours are", 32 tokens at temperature 0)."""

import os
import shutil
import subprocess
import sys

import pytest

from tests.sdk.conftest import SDK

pytestmark = pytest.mark.django_db(transaction=True)

REQUEST = {"model": "gemma3-270m", "prompt": "The three primary colours are", "max_tokens": 32, "temperature": 0}
EXAMPLES = {
    "python": ([sys.executable, str(SDK / "python" / "examples" / "stream.py")], SDK / "python", sys.executable),
    "go": (["go", "run", "./examples/stream"], SDK / "go", shutil.which("go")),
    "java": ([str(SDK / "java" / "run-example.sh")], SDK / "java", shutil.which("javac")),
}


def test_each_sdk_example_gives_the_rest_answer(api, live_env):
    api.post("/v1/completions", json=REQUEST)  # the prompt's prefix in the engine's cache, as for the rest
    rest = api.post("/v1/completions", json=REQUEST).json()["choices"][0]["text"]
    assert rest.strip()
    answers = {}
    for name, (command, cwd, toolchain) in EXAMPLES.items():
        if not toolchain:
            continue  # tests/sdk/test_go_sdk.py and test_java_sdk.py say why they are skipped
        result = subprocess.run(command, cwd=cwd, env={**os.environ, **live_env}, capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0, f"{name}: {result.stderr[-2000:]}"
        answers[name] = result.stdout.removesuffix("\n")
    assert answers == {name: rest for name in answers}
