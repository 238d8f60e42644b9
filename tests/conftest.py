"""Fixtures shared by every test: the named roles (admin, member, auditor, outsider) and their keys.

The real stack (Redis, a Celery worker, the ASGI server, the default model) lives in
tests/stack.py and is started once per session by the `stack` fixture, only for tests
that ask for it.
"""

from pathlib import Path

import pytest

from console.services import create_api_key
from core.redis import redis_client
from lanthorn.redis_server import free_port as unused_port

pytest_plugins = ["tests.stack", "tests.registry.fileserver"]


def pytest_configure(config):
    """The tests keep their blobs in a home of their own, never among the models of the
    installation they run in (a test that garbage-collects would delete those). And a test
    database deleted while its SQLite WAL files stayed (a killed run) makes the next one fail
    with "disk I/O error": remove such leftovers."""
    from django.conf import settings

    settings.LANTHORN_HOME = Path(settings.LANTHORN_HOME) / "test-home"
    settings.LANTHORN_HOME.mkdir(parents=True, exist_ok=True)

    name = settings.DATABASES["default"].get("TEST", {}).get("NAME")
    if name and settings.DATABASES["default"]["ENGINE"].endswith("sqlite3") and not Path(name).exists():
        for suffix in ("-wal", "-shm"):
            Path(name + suffix).unlink(missing_ok=True)


@pytest.fixture(autouse=True)
def _fresh_memos():
    """A test's rolled-back (or flushed) rows are changes that no signal announces: every process's
    copies of keys and models (core.memo) start over before each test."""
    from core.memo import _bump

    _bump()


@pytest.fixture
def admin(django_user_model):
    return django_user_model.objects.create_superuser("alice", "alice@example.org", "password")


@pytest.fixture
def member(django_user_model):
    return django_user_model.objects.create_user("bob", "bob@example.org", "password")


@pytest.fixture
def auditor(django_user_model):
    from console.roles import AUDITOR, set_role

    user = django_user_model.objects.create_user("dana", "dana@example.org", "password")
    set_role(user=user, role=AUDITOR)
    return user


@pytest.fixture
def outsider(django_user_model):
    return django_user_model.objects.create_user("charlie", "charlie@example.org", "password")


@pytest.fixture
def member_key(member):
    return create_api_key(user=member, name="bob's laptop")


@pytest.fixture
def home(settings, tmp_path):
    """LANTHORN_HOME (and so the blob store) in the test's own directory, and a Redis address
    where nothing answers, so that what a test adds tells no running worker anything (the
    code treats an absent Redis as no worker running)."""
    settings.LANTHORN_HOME = tmp_path
    settings.REDIS_URL = f"redis://127.0.0.1:{unused_port()}/0"
    redis_client.cache_clear()
    yield tmp_path
    redis_client.cache_clear()


@pytest.fixture(autouse=True)
def audit_triggers(request):
    """The audit trail's triggers, in place for every test that uses the database. A transactional
    test ends with Django's flush, which deletes every row and which the triggers refuse: such a
    test loses them just before the flush (this fixture asks for the database fixture itself, so
    its teardown runs first); any other test's changes roll back anyway."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None and "_django_db_helper" not in request.fixturenames:
        yield
        return
    from audit import triggers

    request.getfixturevalue("_django_db_helper")
    triggers.install()
    yield
    if _transactional(request, marker):
        triggers.drop()


def _transactional(request, marker) -> bool:
    return "transactional_db" in request.fixturenames or (
        marker is not None and bool(marker.kwargs.get("transaction") or (marker.args and marker.args[0])))
