"""The room's WebSocket on the real stack: Redis, the Celery worker with the default model, the
channel layer. The consumer runs in this process (WebsocketCommunicator)."""

import asyncio

import pytest

from audit.models import AuditEvent
from console.models import UsageRecord
from playground.models import Conversation, Message
from tests.playground.conftest import answer_saved, cookie_for, frames_until, settle, socket

pytestmark = pytest.mark.django_db(transaction=True)

COUNT = "Continue the list: 1, 2, 3, 4, 5,"


def tokens(frames) -> list[str]:
    return [piece for f in frames if f["type"] == "token" for piece in f["pieces"]]


def test_it_streams_an_answer_token_by_token_and_saves_it(room, member):
    cookie = cookie_for(member)

    async def scenario():
        ws = socket(room.pk, cookie)
        assert (await ws.connect())[0]
        state = await ws.receive_json_from(timeout=10)
        assert state["type"] == "state" and state["messages"] == [] and state["present"] == ["bob"]
        await ws.send_json_to({"type": "send", "content": COUNT})
        frames = await frames_until(ws, answer_saved)
        await settle()
        await ws.disconnect()
        return frames

    frames = asyncio.run(scenario())
    question = next(f["message"] for f in frames if f["type"] == "message")
    assert question["author"] == "bob" and question["content"] == COUNT
    assert [f["type"] for f in frames].count("token") >= 2, "the answer came in one piece"
    answer = frames[-1]["message"]
    assert answer["status"] == "ok" and answer["author"] is None
    assert answer["content"] == "".join(tokens(frames)) != ""
    saved = Message.objects.get(pk=answer["id"])
    assert saved.content == answer["content"] and saved.request_id == answer["request_id"]
    row = UsageRecord.objects.get(request_id=answer["request_id"])
    assert (row.endpoint, row.user, row.api_key, row.outcome) == ("playground", member, None, "ok")
    assert UsageRecord.objects.count() == 1


BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"


def test_the_audit_event_of_an_answer_names_the_address_and_browser_the_message_came_from(room, member):
    cookie = cookie_for(member)

    async def scenario():
        ws = socket(room.pk, cookie, user_agent=BROWSER, client=("192.0.2.10", 51234))
        assert (await ws.connect())[0]
        await ws.receive_json_from(timeout=10)
        await ws.send_json_to({"type": "send", "content": "Hello"})
        answer = (await frames_until(ws, answer_saved))[-1]["message"]
        await settle()
        await ws.disconnect()
        return answer

    answer = asyncio.run(scenario())
    [event] = AuditEvent.objects.filter(action="request.chat", details__request_id=answer["request_id"])
    assert (event.actor_username, event.source_ip, event.user_agent) == ("bob", "192.0.2.10", BROWSER)


def generations_running() -> int:
    """Generations the stack's worker is running now, as the worker itself reports them."""
    from lanthorn.celery import app

    # limit: the stack's two workers (the model's, the jobs'); it returns once both have answered
    # rather than after the whole timeout, while the worker goes on generating.
    active = app.control.inspect(timeout=2, limit=2).active() or {}
    return sum(task["name"] == "inference.generate" for tasks in active.values() for task in tasks)


def test_stop_cancels_the_generation_in_the_worker_and_keeps_the_partial_answer(room, member):
    # 4000 tokens keep the worker busy for 25 s at the least (160 tok/s at best on this machine).
    Conversation.objects.filter(pk=room.pk).update(max_tokens=4000)
    cookie = cookie_for(member)

    async def scenario():
        ws = socket(room.pk, cookie)
        assert (await ws.connect())[0]
        await ws.receive_json_from(timeout=10)
        await ws.send_json_to({"type": "send", "content": COUNT})
        streamed = await frames_until(ws, lambda f: len(tokens([f])) and f["index"] >= 5)
        assert await asyncio.to_thread(generations_running) == 1
        await ws.send_json_to({"type": "stop"})
        stopped = (await frames_until(ws, answer_saved))[-1]["message"]
        await settle()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while await asyncio.to_thread(generations_running):
            assert loop.time() < deadline, "the worker is still generating the stopped answer"
            await asyncio.sleep(0.5)
        await ws.disconnect()
        return streamed, stopped

    streamed, stopped = asyncio.run(scenario())
    assert stopped["status"] == "stopped"
    assert stopped["content"].startswith("".join(tokens(streamed)))
    assert Message.objects.get(pk=stopped["id"]).status == Message.STOPPED
    row = UsageRecord.objects.get(request_id=stopped["request_id"])
    assert (row.endpoint, row.outcome, row.finish_reason) == ("playground", "cancelled", "cancelled")
    assert row.completion_tokens < 200


def test_after_a_stop_the_room_answers_again(room, member):
    cookie = cookie_for(member)

    async def scenario():
        ws = socket(room.pk, cookie)
        assert (await ws.connect())[0]
        await ws.receive_json_from(timeout=10)
        await ws.send_json_to({"type": "send", "content": COUNT})
        await frames_until(ws, lambda f: f["type"] == "token")
        await ws.send_json_to({"type": "stop"})
        await frames_until(ws, answer_saved)
        await ws.send_json_to({"type": "send", "content": "Hello"})
        answers = [f["message"] for f in await frames_until(ws, answer_saved) if f["type"] == "message"]
        await settle()
        await ws.disconnect()
        return answers

    question, answer = asyncio.run(scenario())
    assert question["content"] == "Hello"
    assert answer["status"] == "ok"


def test_every_member_in_the_room_sees_the_same_answer_stream(room, member, teammate):
    cookies = cookie_for(member), cookie_for(teammate)

    async def scenario():
        bob, erin = socket(room.pk, cookies[0]), socket(room.pk, cookies[1])
        assert (await bob.connect())[0]
        await bob.receive_json_from(timeout=10)
        assert (await erin.connect())[0]
        await erin.receive_json_from(timeout=10)
        await frames_until(bob, lambda f: f["type"] == "presence" and f["present"] == ["bob", "erin"])
        await bob.send_json_to({"type": "send", "content": COUNT})
        seen = await asyncio.gather(frames_until(bob, answer_saved), frames_until(erin, answer_saved))
        await settle()
        await erin.disconnect()
        left = await frames_until(bob, lambda f: f["type"] == "presence")
        await bob.disconnect()
        return seen, left[-1]["present"]

    (bobs, erins), present_after = asyncio.run(scenario())
    assert tokens(erins) == tokens(bobs) and len(tokens(erins)) >= 2
    assert erins[-1]["message"] == bobs[-1]["message"]
    question = next(f["message"] for f in erins if f["type"] == "message")
    assert question["author"] == "bob"
    assert present_after == ["bob"]


def test_one_who_joins_mid_answer_gets_the_text_so_far_then_the_rest(room, member, teammate):
    Conversation.objects.filter(pk=room.pk).update(max_tokens=60)
    cookies = cookie_for(member), cookie_for(teammate)

    async def scenario():
        bob = socket(room.pk, cookies[0])
        assert (await bob.connect())[0]
        await bob.receive_json_from(timeout=10)
        await bob.send_json_to({"type": "send", "content": COUNT})
        await frames_until(bob, lambda f: len(tokens([f])) and f["index"] >= 5)
        erin = socket(room.pk, cookies[1])
        assert (await erin.connect())[0]
        state = await erin.receive_json_from(timeout=10)
        rest = await frames_until(erin, answer_saved)
        await settle()
        await erin.disconnect()
        await bob.disconnect()
        return state, rest

    state, rest = asyncio.run(scenario())
    assert state["type"] == "state" and state["answer"]["by"] == "bob"
    text = list(state["answer"]["pieces"])
    assert len(text) >= 5
    for frame in rest:
        if frame["type"] == "token":  # as the page does: drop the pieces it already has
            assert frame["index"] <= len(text)
            text += frame["pieces"][len(text) - frame["index"]:]
    assert "".join(text) == rest[-1]["message"]["content"]


def test_an_outsider_and_an_anonymous_socket_are_refused(room, outsider):
    cookie = cookie_for(outsider)

    async def scenario():
        results = []
        for ws in (socket(room.pk, cookie), socket(room.pk)):
            connected, _ = await ws.connect()
            results.append(connected)
            await ws.disconnect()
        return results

    assert asyncio.run(scenario()) == [False, False]


def test_a_socket_from_another_origin_is_refused(room, member):
    cookie = cookie_for(member)

    async def scenario():
        ws = socket(room.pk, cookie, origin="http://evil.example")
        connected, _ = await ws.connect()
        await ws.disconnect()
        return connected

    assert asyncio.run(scenario()) is False


def test_a_malformed_frame_gets_an_error_frame_and_the_socket_stays_usable(room, member):
    Conversation.objects.filter(pk=room.pk).update(max_tokens=4)
    cookie = cookie_for(member)

    async def scenario():
        ws = socket(room.pk, cookie)
        assert (await ws.connect())[0]
        await ws.receive_json_from(timeout=10)
        errors = []
        for bad in ("{not json", "[1, 2]", '{"type": "dance"}', '{"type": "send", "content": "  "}',
                    '{"type": "send", "content": 42}'):
            await ws.send_to(text_data=bad)
            errors.append(await ws.receive_json_from(timeout=10))
        await ws.send_json_to({"type": "send", "content": "Hello"})
        answer = (await frames_until(ws, answer_saved))[-1]["message"]
        await settle()
        await ws.disconnect()
        return errors, answer

    errors, answer = asyncio.run(scenario())
    assert all(e["type"] == "error" and e["error"] for e in errors)
    assert answer["status"] == "ok"
    assert Message.objects.filter(role=Message.USER).count() == 1


def test_an_unavailable_model_answers_with_an_error_message(room, member):
    Conversation.objects.filter(pk=room.pk).update(model_name="no-such-model")
    cookie = cookie_for(member)

    async def scenario():
        ws = socket(room.pk, cookie)
        assert (await ws.connect())[0]
        await ws.receive_json_from(timeout=10)
        await ws.send_json_to({"type": "send", "content": "Hello"})
        answer = (await frames_until(ws, answer_saved, timeout=20))[-1]["message"]
        await settle()
        await ws.disconnect()
        return answer

    answer = asyncio.run(scenario())
    assert answer["status"] == "error" and "no-such-model" in answer["error"]
    row = UsageRecord.objects.get(request_id=answer["request_id"])
    assert (row.endpoint, row.outcome, row.error_code) == ("playground", "error", "model_not_found")


def test_a_message_longer_than_the_context_answers_with_an_error_message(room, member):
    cookie = cookie_for(member)

    async def scenario():
        ws = socket(room.pk, cookie)
        assert (await ws.connect())[0]
        await ws.receive_json_from(timeout=10)
        await ws.send_json_to({"type": "send", "content": "hello " * 5000})  # over 4096 tokens
        answer = (await frames_until(ws, answer_saved))[-1]["message"]
        await settle()
        await ws.disconnect()
        return answer

    answer = asyncio.run(scenario())
    assert answer["status"] == "error" and "maximum context length" in answer["error"]
    assert UsageRecord.objects.get(request_id=answer["request_id"]).error_code == "context_length_exceeded"
