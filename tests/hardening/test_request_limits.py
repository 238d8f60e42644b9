"""Hostile bodies cost a clear error, not the server's memory: the key is checked from the headers
before the body is read, bodies are capped (by Content-Length and by running total) and timed,
on the consumers and on Django's routes alike."""

import time

import httpx
import pytest

from console.models import UsageRecord
from core.anonymous import refusal_counts
from tests.hardening.rawhttp import chunked, filler, request, rss_bytes

pytestmark = pytest.mark.django_db(transaction=True)

HUGE = 300 * 1024 * 1024
OVER = 5 * 1024 * 1024  # over the default limit of 4 MiB


def error_of(reply, status: int) -> dict:
    assert reply.status == status, reply.body[:300]
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def wait_for_usage_row(key) -> UsageRecord:
    """The request's one usage row. When the body limit answers, the consumer learns of it with
    the disconnect and writes the row just after the client has its error; a test waits for it,
    so that no write of the server's races the database's flush at teardown."""
    deadline = time.monotonic() + 15
    while not UsageRecord.objects.filter(api_key=key).exists():
        assert time.monotonic() < deadline, "no usage row 15 s after the error"
        time.sleep(0.05)
    return UsageRecord.objects.get(api_key=key)


def test_it_refuses_a_huge_chunked_body_without_a_key_before_reading_it(stack, default_model):
    before = rss_bytes(stack.server.pid)
    reply = request(stack.url, path="/v1/chat/completions", body=chunked(HUGE),
                    headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
    assert error_of(reply, 401)["code"] == "invalid_api_key"
    assert reply.sent < 16 * 1024 * 1024
    assert rss_bytes(stack.server.pid) - before < 32 * 1024 * 1024


def test_it_refuses_a_body_over_the_limit_by_its_content_length(stack, default_model, member_key):
    before = rss_bytes(stack.server.pid)
    reply = request(stack.url, path="/v1/chat/completions", body=filler(HUGE),
                    headers={"Authorization": f"Bearer {member_key.raw}", "Content-Length": str(HUGE)})
    assert error_of(reply, 413)["code"] == "request_too_large"
    assert reply.sent < 16 * 1024 * 1024
    assert rss_bytes(stack.server.pid) - before < 32 * 1024 * 1024


def test_it_refuses_a_chunked_body_once_its_running_total_passes_the_limit(stack, default_model, member_key):
    reply = request(stack.url, path="/v1/chat/completions", body=chunked(HUGE),
                    headers={"Authorization": f"Bearer {member_key.raw}", "Transfer-Encoding": "chunked"})
    assert error_of(reply, 413)["code"] == "request_too_large"
    assert reply.sent < 16 * 1024 * 1024
    row = wait_for_usage_row(member_key.key)
    assert (row.status_code, row.error_code) == (413, "request_too_large")


def test_it_times_out_a_sender_that_stalls(stack, default_model, member_key):
    reply = request(stack.url, path="/v1/chat/completions", body=[b'{"model": '], pause=0,
                    headers={"Authorization": f"Bearer {member_key.raw}", "Content-Length": "1000"},
                    timeout=float(stack.env["LANTHORN_BODY_TIMEOUT"]) + 20)
    assert error_of(reply, 408)["code"] == "request_timeout"
    row = wait_for_usage_row(member_key.key)
    assert (row.status_code, row.error_code) == (408, "request_timeout")


@pytest.mark.parametrize("path", ["/api/pulls", "/login/", "/admin/login/"])
def test_it_caps_bodies_on_djangos_routes(stack, admin, path):
    reply = request(stack.url, path=path, body=chunked(OVER),
                    headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
    assert error_of(reply, 413)["code"] == "request_too_large"


def test_it_answers_a_deeply_nested_body_with_an_error_and_a_usage_row(api, member_key):
    r = api.post("/v1/chat/completions", content=b"[" * 100_000 + b"]" * 100_000)
    assert r.status_code == 400, r.text
    assert "nested" in r.json()["error"]["message"]
    row = UsageRecord.objects.get()
    assert (row.status_code, row.api_key) == (400, member_key.key)


def test_it_answers_a_deeply_nested_body_on_the_registry_api_with_an_error(stack, admin):
    from console.services import create_api_key

    key = create_api_key(user=admin, name="admin's")
    r = httpx.post(stack.url + "/api/pulls", content=b"[" * 100_000, timeout=30,
                   headers={"Authorization": f"Bearer {key.raw}", "Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"]


@pytest.mark.parametrize("headers, reason", [
    ({}, "missing_api_key"),
    ({"Authorization": "Bearer lt-not-a-real-key"}, "invalid_api_key"),
])
def test_it_counts_requests_without_a_valid_key_instead_of_writing_rows(stack, default_model, headers, reason):
    before = refusal_counts().get(reason, 0)
    for _ in range(3):
        r = httpx.post(stack.url + "/v1/chat/completions", headers=headers, timeout=30,
                       json={"model": "gemma3-270m", "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 401
    r = httpx.get(stack.url + "/v1/chat/completions", headers=headers, timeout=30)
    assert r.status_code == 401  # not 405: the key is checked first
    assert refusal_counts()[reason] == before + 4
    assert not UsageRecord.objects.exists()
