"""Requests through the real stack (the SSE door, a worker with the model) become audit events."""

import httpx
import pytest

from audit import services
from console.models import UsageRecord
from core.anonymous import refusal_counts
from tests.audit.helpers import events_of
from tests.inference.helpers import chat, sse_events

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_records_a_streamed_chat_request_once_with_its_key_model_and_tokens(api, member_key):
    with api.stream("POST", "/v1/chat/completions", json=chat("Count: one, two,", max_tokens=8, stream=True),
                    headers={"User-Agent": "audit-test/1.0"}) as response:
        sse_events(response)

    [event] = events_of("request.chat")
    usage = UsageRecord.objects.get()
    assert (event.actor_username, event.key_prefix, event.target, event.outcome) == (
        "bob", member_key.key.prefix, "gemma3-270m", "ok")
    assert (event.source_ip, event.user_agent) == ("127.0.0.1", "audit-test/1.0")
    assert event.details["request_id"] == usage.request_id
    assert event.details["completion_tokens"] == usage.completion_tokens > 0
    assert event.content_digest == ""  # content logging is off by default
    assert services.verify_trail().ok


def test_it_counts_a_completion_refused_for_a_bad_key_instead_of_recording_it(stack, default_model):
    """Nobody was authenticated: a flood of these must not grow the trail (issue 8); they are
    counted per reason in Redis (core.anonymous)."""
    before = refusal_counts().get("invalid_api_key", 0)
    response = httpx.post(f"{stack.url}/v1/completions", json={"model": "gemma3-270m", "prompt": "Hi"},
                          headers={"Authorization": "Bearer lt-wrong"}, timeout=30)

    assert response.status_code == 401
    assert events_of("request.completion") == []
    assert refusal_counts().get("invalid_api_key", 0) == before + 1
