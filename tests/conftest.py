"""Fixtures shared by every test: the named roles (admin, member, outsider) and their keys.

The real stack (Redis, a Celery worker, the ASGI server, the default model) lives in
tests/stack.py and is started once per session by the `stack` fixture, only for tests
that ask for it.
"""

import pytest

from console.services import create_api_key

pytest_plugins = ["tests.stack"]


@pytest.fixture
def admin(django_user_model):
    return django_user_model.objects.create_superuser("alice", "alice@example.org", "password")


@pytest.fixture
def member(django_user_model):
    return django_user_model.objects.create_user("bob", "bob@example.org", "password")


@pytest.fixture
def outsider(django_user_model):
    return django_user_model.objects.create_user("charlie", "charlie@example.org", "password")


@pytest.fixture
def member_key(member):
    return create_api_key(user=member, name="bob's laptop")
