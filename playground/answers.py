"""The model's answers in a room: one task per answer, through the request session.

The task belongs to the room, not to the socket that asked: the sender may leave and the answer
still streams to the others and is saved. Every member's socket is in the room's group and gets
each piece of text as the worker sends it. A Stop from any member reaches the task through the
room's stop group (whichever server process runs it) and cancels the session, which stops the
generation in the worker; the partial answer is saved as stopped.
"""

import asyncio
import contextlib
import logging

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async

from core.errors import ApiError
from inference.session import Done, Failed, RequestSession, Text
from playground import live, services
from playground.models import Message

log = logging.getLogger(__name__)


def room_group(room: int) -> str:
    return f"playground.room.{room}"


def stop_group(room: int) -> str:
    return f"playground.room.{room}.stop"


def message_frame(message: Message) -> dict:
    """A saved message as the page shows it."""
    return {"id": message.id, "role": message.role, "author": message.author.username if message.author else None,
            "content": message.content, "status": message.status, "error": message.error,
            "request_id": message.request_id, "created": message.created_at.isoformat()}


@database_sync_to_async
def _save(**fields) -> dict:
    return message_frame(services.add_message(**fields))


_chat_request = database_sync_to_async(services.chat_request)
_begin = sync_to_async(live.begin_answer, thread_sensitive=False)
_add_pieces = sync_to_async(live.add_pieces, thread_sensitive=False)
_end = sync_to_async(live.end_answer, thread_sensitive=False)

_running: set[asyncio.Task] = set()  # the event loop keeps only weak references to tasks


async def ask(*, layer, room: int, user, content: str, origin: dict | None = None) -> bool:
    """Starts the answer to `user`'s message in the background; False while the room is busy
    with another answer (nothing is saved then). `origin`: where the message came from (the
    `source_ip` and `user_agent` of `core.actions.scope_origin`), for the answer's audit event."""
    session = RequestSession(interface="playground", user=user, origin=origin)
    if not await _begin(room=room, request_id=session.request_id, by=user.username):
        return False
    task = asyncio.create_task(_answer(layer=layer, room=room, user=user, content=content, session=session))
    _running.add(task)
    task.add_done_callback(_running.discard)
    return True


async def stop(*, layer, room: int, request_id: str | None) -> None:
    """Asks the room's answer (that one, if `request_id` is given) to stop."""
    await layer.group_send(stop_group(room), {"type": "room.stop", "request_id": request_id})


async def _answer(*, layer, room: int, user, content: str, session: RequestSession) -> None:
    group, pieces = room_group(room), []
    status, error = Message.OK, ""
    stop_channel = await layer.new_channel(prefix="playground.stop.")
    await layer.group_add(stop_group(room), stop_channel)
    stopper = asyncio.create_task(_stop_when_asked(layer, stop_channel, session))
    try:
        question = await _save(conversation_id=room, author=user, role=Message.USER, content=content)
        await layer.group_send(group, {"type": "room.message", "message": question})
        await layer.group_send(group, {"type": "room.answer", "request_id": session.request_id, "by": user.username})
        await session.start(await _chat_request(conversation_id=room))
        async with contextlib.aclosing(session.events()) as events:
            async for event in events:
                if isinstance(event, Text):
                    pieces.extend(event.pieces)
                    index = await _add_pieces(room=room, pieces=event.pieces)
                    await layer.group_send(group, {"type": "room.token", "request_id": session.request_id,
                                                   "index": index, "pieces": event.pieces})
                elif isinstance(event, Done) and event.finish_reason == "cancelled":
                    status = Message.STOPPED
                elif isinstance(event, Failed):
                    status, error = Message.ERROR, event.error.message
        if session.call.outcome == "cancelled":
            status = Message.STOPPED
    except ApiError as exc:  # refused before it started (no such model, a bad setting)
        status, error = Message.ERROR, exc.message
    except Exception:
        log.exception("the answer %s in room %s failed", session.request_id, room)
        status, error = Message.ERROR, "The answer failed on the server."
        await session.cancel()
    finally:
        stopper.cancel()
        await layer.group_discard(stop_group(room), stop_channel)
        try:
            answer = await _save(conversation_id=room, role=Message.ASSISTANT, content="".join(pieces),
                                 status=status, error=error, request_id=session.request_id)
            await layer.group_send(group, {"type": "room.message", "message": answer})
        except Exception:  # the room was deleted meanwhile, say
            log.exception("could not save the answer %s in room %s", session.request_id, room)
        finally:
            await _end(room=room)


async def _stop_when_asked(layer, channel: str, session: RequestSession) -> None:
    while True:
        message = await layer.receive(channel)
        if message.get("request_id") in (None, session.request_id):
            await asyncio.shield(session.cancel())  # the row is written even if the answer ends first
            return
