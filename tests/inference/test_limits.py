"""Limits on keys and people, on the real stack (ASGI server, Redis, worker, model): they hold
exactly when requests arrive at once, because admission is one Lua script in Redis."""

import asyncio
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.db.models import F, Sum
from django.utils import timezone

from console import limits
from console.models import ApiKey, UsageRecord
from console.services import create_api_key, set_user_limits
from core.redis import redis_client
from tests.inference.helpers import chat

pytestmark = pytest.mark.django_db(transaction=True)

LANTHORN = str(Path(sys.executable).with_name("lanthorn"))


@pytest.fixture(autouse=True)
def fresh_limits(stack):
    """Counters of an earlier test's key (ids can repeat across tests) must not count here."""
    client = redis_client()
    for name in client.scan_iter(f"{limits.PREFIX}:*"):
        client.delete(name)


async def fire(url: str, raw: str, bodies: list[dict]) -> list[httpx.Response]:
    """Sends all the requests at once, each on its own connection."""
    async with httpx.AsyncClient(base_url=url, timeout=300,
                                 limits=httpx.Limits(max_connections=len(bodies))) as client:
        return await asyncio.gather(*[
            client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {raw}"})
            for body in bodies])


def key_with(user, **limits_):
    return create_api_key(user=user, name="limited", **limits_)


def test_it_lets_exactly_rpm_requests_through_out_of_50_at_once(stack, default_model, member):
    key = key_with(member, rpm=10)
    responses = async_to_sync(fire)(stack.url, key.raw, [chat("Hi", max_tokens=2)] * 50)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 10 + [429] * 40
    refused = [r for r in responses if r.status_code == 429]
    assert {r.json()["error"]["code"] for r in refused} == {"rate_limit_exceeded"}
    assert all(1 <= int(r.headers["Retry-After"]) <= 60 for r in refused)
    rows = UsageRecord.objects.filter(api_key=key.key)
    assert rows.filter(outcome="ok", status_code=200).count() == 10
    assert rows.filter(status_code=429, error_code="rate_limit_exceeded").count() == 40


def test_concurrent_streams_never_spend_more_than_the_days_budget(stack, default_model, member):
    budget = 150
    key = key_with(member, tokens_per_day=budget)
    # Each reserves 8 + 2 * 16 + its prompt's 11 bytes up front: two fit, the rest are refused.
    bodies = [chat(f"Count to {i}.", max_tokens=8, stream=True) for i in range(8)]
    responses = async_to_sync(fire)(stack.url, key.raw, bodies)
    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(ok) == 2 and len(refused) == 6
    assert {r.json()["error"]["code"] for r in refused} == {"insufficient_quota"}
    spent = UsageRecord.objects.filter(api_key=key.key).aggregate(
        tokens=Sum(F("prompt_tokens") + F("completion_tokens")))["tokens"]
    assert 0 < spent <= budget
    # The unused reservations were refunded: the day's counter is what the usage rows say.
    assert limits.used_today(api_key=key.key) == spent


def test_it_refuses_more_requests_at_once_than_the_keys_concurrency(stack, default_model, member):
    key = key_with(member, concurrency=2)
    responses = async_to_sync(fire)(stack.url, key.raw, [chat("Tell a story.", max_tokens=24)] * 6)
    assert sorted(r.status_code for r in responses) == [200] * 2 + [429] * 4
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 429} == {"rate_limit_exceeded"}


def test_it_frees_the_concurrency_slot_when_a_request_ends(stack, default_model, member):
    key = key_with(member, concurrency=1)
    for _ in range(3):  # one at a time: each finds the slot free again
        (response,) = async_to_sync(fire)(stack.url, key.raw, [chat("Hi", max_tokens=2)])
        assert response.status_code == 200, response.text


def test_it_refuses_a_model_the_key_may_not_use(stack, default_model, member):
    from registry.models import Model

    Model.objects.create(name="other")
    key = key_with(member, models=["other"])
    (response,) = async_to_sync(fire)(stack.url, key.raw, [chat("Hi", max_tokens=2)])
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "model_not_allowed"
    assert UsageRecord.objects.get(api_key=key.key).status_code == 403


def test_it_refuses_an_expired_key_with_401(stack, default_model, member):
    key = key_with(member)
    ApiKey.objects.filter(pk=key.key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    (response,) = async_to_sync(fire)(stack.url, key.raw, [chat("Hi", max_tokens=2)])
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert "expired" in response.json()["error"]["message"]


def shell(stack, user, stdin: str) -> subprocess.CompletedProcess:
    """`lanthorn shell` as `user`: a door without a key, like the playground."""
    return subprocess.run([LANTHORN, "shell", "gemma3-270m", "--user", user.username], input=stdin,
                          env=stack.env, capture_output=True, text=True, timeout=120)


def test_a_person_without_a_key_gets_their_own_limits(stack, default_model, member):
    set_user_limits(user=member, rpm=1, tokens_per_day=None, concurrency=None)
    default_model.max_tokens = 4  # the shell asks for the model's default: a short answer
    default_model.save(update_fields=["max_tokens"])
    result = shell(stack, member, "Hi\nHi again\n")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "lanthorn: Rate limit reached: 1 requests per minute. Try again shortly.")
    rows = UsageRecord.objects.filter(user=member, endpoint="cli.shell").order_by("created_at")
    assert [(r.status_code, r.error_code) for r in rows] == [(200, ""), (429, "rate_limit_exceeded")]


def test_an_auditor_cannot_run_models(stack, default_model, auditor):
    result = shell(stack, auditor, "Hi\n")
    assert result.returncode == 1
    assert "Auditors" in result.stderr
    assert UsageRecord.objects.get(user=auditor).status_code == 403


def test_an_auditors_api_key_cannot_run_models(stack, default_model, auditor, member):
    # The key check reads whether the owner is an auditor in its own query; a member's key is not one.
    auditors, members = (key_with(person).raw for person in (auditor, member))
    refused, = async_to_sync(fire)(stack.url, auditors, [chat("Hi", max_tokens=2)])
    allowed, = async_to_sync(fire)(stack.url, members, [chat("Hi", max_tokens=2)])
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"
    assert allowed.status_code == 200
