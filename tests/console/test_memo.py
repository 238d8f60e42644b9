"""Each process's copies of API keys (core.memo, through console.selectors.key_by_hash): read once,
read again after any change to a key, its owner or the owner's groups, in any process."""

import pytest

from console.roles import AUDITOR, set_role
from console.selectors import key_by_hash
from console.services import authenticate_key, revoke_api_key
from core.memo import TOKEN
from core.redis import redis_client

pytestmark = pytest.mark.django_db


def test_it_reads_a_key_once(member_key, django_assert_num_queries):
    key_by_hash(member_key.key.hashed_key)
    with django_assert_num_queries(0):
        assert key_by_hash(member_key.key.hashed_key).pk == member_key.key.pk


def test_it_reads_the_key_again_once_another_process_changed_a_row(member_key, django_assert_num_queries):
    key_by_hash(member_key.key.hashed_key)
    redis_client().set(TOKEN, "another process's change")
    with django_assert_num_queries(1):
        key_by_hash(member_key.key.hashed_key)


def test_it_refuses_a_key_revoked_after_it_was_used(member_key):
    authenticate_key(raw=member_key.raw)
    revoke_api_key(key=member_key.key)
    assert key_by_hash(member_key.key.hashed_key).revoked_at is not None


def test_it_refuses_a_key_whose_owner_was_deactivated_after_it_was_used(member, member_key):
    authenticate_key(raw=member_key.raw)
    member.is_active = False
    member.save()
    assert not key_by_hash(member_key.key.hashed_key).user.is_active


def test_it_sees_the_owner_become_an_auditor(member, member_key):
    authenticate_key(raw=member_key.raw)
    set_role(user=member, role=AUDITOR)
    assert key_by_hash(member_key.key.hashed_key).user.in_auditors


def test_it_reads_the_database_while_redis_is_unreachable(member_key, monkeypatch,
                                                          django_assert_num_queries):
    import redis

    from core import memo

    key_by_hash(member_key.key.hashed_key)
    monkeypatch.setattr(memo, "redis_client", lambda: redis.Redis(port=1, socket_connect_timeout=1))
    with django_assert_num_queries(1):
        assert key_by_hash(member_key.key.hashed_key).pk == member_key.key.pk
