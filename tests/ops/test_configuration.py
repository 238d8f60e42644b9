"""Configuration: every setting is documented in docs/configuration.md; an env file is read;
a bad value stops start-up with a message naming the variable."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
READ = re.compile(r'(?:os\.getenv|os\.environ\.get|os\.environ\[|env(?:int|bool|float|choice|list))\(?\s*"([A-Z][A-Z0-9_]+)"')
# Read for us by a library: dj_database_url reads DATABASE_URL.
READ_BY_LIBRARIES = {"DATABASE_URL"}


def settings_read() -> set[str]:
    names = set(READ_BY_LIBRARIES)
    for path in ["lanthorn/settings.py", "lanthorn/launcher.py", *map(str, (ROOT / "lanthorn/cli").glob("*.py"))]:
        names |= set(READ.findall((ROOT / path).read_text()))
    return names


def test_it_documents_every_setting():
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", (ROOT / "docs/configuration.md").read_text()))
    missing = settings_read() - documented
    assert not missing, f"settings not in docs/configuration.md: {sorted(missing)}"
    assert {"LANTHORN_HOME", "LANTHORN_METRICS_TOKEN", "REDIS_URL"} <= settings_read()


def setting(name: str, **env):
    """Starts Django as every Lanthorn command does, with `env`, and prints a setting."""
    code = ("import os, django; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'lanthorn.settings'); "
            f"django.setup(); from django.conf import settings; print(settings.{name})")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LANTHORN_") or k == "LANTHORN_HOME"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=ROOT, env={**clean, **env})


def run_cli(**env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LANTHORN_") or k == "LANTHORN_HOME"}
    return subprocess.run([sys.executable, "-m", "lanthorn.cli", "list"], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env={**clean, **env})


@pytest.mark.parametrize("name,value", [
    ("LANTHORN_PORT", "eighty"),
    ("LANTHORN_PORT", "70000"),
    ("LANTHORN_WEB_PROCESSES", "0"),
    ("LANTHORN_HEARTBEAT_TTL", "soon"),
    ("LANTHORN_LOG_FORMAT", "xml"),
    ("LANTHORN_METRICS_ALLOW", "10.0.0.0/33"),
    ("DEBUG", "maybe"),
])
def test_it_stops_on_a_bad_value_naming_the_variable(name, value):
    r = run_cli(**{name: value})
    assert r.returncode == 1
    assert r.stderr.startswith("lanthorn: ") and name in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_it_reads_settings_from_the_env_file(tmp_path):
    env_file = tmp_path / "lanthorn.env"
    env_file.write_text("LANTHORN_QUEUE_BACKLOG=7\n")
    r = setting("LANTHORN_QUEUE_BACKLOG", LANTHORN_ENV_FILE=str(env_file))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "7"


def test_it_lets_the_environment_win_over_the_env_file(tmp_path):
    env_file = tmp_path / "lanthorn.env"
    env_file.write_text("LANTHORN_QUEUE_BACKLOG=7\n")
    r = setting("LANTHORN_QUEUE_BACKLOG", LANTHORN_ENV_FILE=str(env_file), LANTHORN_QUEUE_BACKLOG="9")
    assert r.stdout.strip() == "9", r.stderr


def test_it_stops_when_the_env_file_named_is_missing(tmp_path):
    r = run_cli(LANTHORN_ENV_FILE=str(tmp_path / "absent.env"))
    assert r.returncode == 1
    assert "LANTHORN_ENV_FILE" in r.stderr
