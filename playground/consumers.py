"""The playground's WebSocket: one socket per member in a room (`ws/playground/rooms/<id>/`).

Frames from the page: `{"type": "send", "content": "..."}` and `{"type": "stop", "request_id"?}`.
Frames to the page: `state` (on connect: messages, the answer in progress so far, who is present),
`message` (a saved message; an answer's ends its live text), `answer` (an answer began), `token`
(pieces of the answer, with the index of the first), `presence`, and `error` (a frame refused).
"""

import json

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from core.actions import scope_origin
from playground import answers, live, selectors

MAX_MESSAGE_CHARS = 32_000


@database_sync_to_async
def _enter(*, user, room: int) -> bool:
    return selectors.enterable(user=user, pk=room) is not None


@database_sync_to_async
def _history(*, room: int) -> list[dict]:
    return [answers.message_frame(m) for m in selectors.history(conversation_id=room)]


_join = sync_to_async(live.join, thread_sensitive=False)
_leave = sync_to_async(live.leave, thread_sensitive=False)
_answer_so_far = sync_to_async(live.answer_so_far, thread_sensitive=False)


class RoomConsumer(AsyncJsonWebsocketConsumer):
    room: int
    group: str | None = None

    async def connect(self):
        self.user = self.scope.get("user")
        self.room = int(self.scope["url_route"]["kwargs"]["room"])
        if not await _enter(user=self.user, room=self.room):
            await self.close()  # before accepting: the handshake is refused with a 403
            return
        self.group = answers.room_group(self.room)
        # Join the group before reading the room: nothing streamed from here on is missed.
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        present = await _join(room=self.room, channel=self.channel_name, username=self.user.username)
        await self.send_json({"type": "state", "messages": await _history(room=self.room),
                              "answer": await _answer_so_far(room=self.room), "present": present})
        await self.channel_layer.group_send(self.group, {"type": "room.presence", "present": present})

    async def disconnect(self, code):
        if self.group is None:
            return
        await self.channel_layer.group_discard(self.group, self.channel_name)
        present = await _leave(room=self.room, channel=self.channel_name)
        await self.channel_layer.group_send(self.group, {"type": "room.presence", "present": present})

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        try:
            content = json.loads(text_data or "")
        except ValueError:
            await self._refuse("A frame must be a JSON object.")
            return
        await self.receive_json(content)

    async def receive_json(self, content, **kwargs):
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "send":
            await self._ask(content.get("content"))
        elif kind == "stop":
            request_id = content.get("request_id")
            await answers.stop(layer=self.channel_layer, room=self.room,
                               request_id=request_id if isinstance(request_id, str) else None)
        else:
            await self._refuse('A frame must be {"type": "send", "content": "..."} or {"type": "stop"}.')

    async def _ask(self, content) -> None:
        if not isinstance(content, str) or not content.strip():
            await self._refuse("Write a message first.")
        elif len(content) > MAX_MESSAGE_CHARS:
            await self._refuse(f"A message can have at most {MAX_MESSAGE_CHARS} characters.")
        elif not await _enter(user=self.user, room=self.room):  # left the team, or was deactivated
            await self.close(code=4403)
        elif not await answers.ask(layer=self.channel_layer, room=self.room, user=self.user, content=content,
                                   origin=scope_origin(self.scope)):
            await self._refuse("The model is still answering in this room: wait for it, or press Stop.")

    async def _refuse(self, error: str) -> None:
        await self.send_json({"type": "error", "error": error})

    # The room's group.
    async def room_message(self, event):
        await self.send_json({"type": "message", "message": event["message"]})

    async def room_answer(self, event):
        await self.send_json({"type": "answer", "request_id": event["request_id"], "by": event["by"]})

    async def room_token(self, event):
        await self.send_json({"type": "token", "request_id": event["request_id"], "index": event["index"],
                              "pieces": event["pieces"]})

    async def room_presence(self, event):
        await self.send_json({"type": "presence", "present": event["present"]})
