"""Playground fixtures: a team with two members, rooms, and sockets opened in this process.

The consumer runs in the test process (Channels' WebsocketCommunicator) against the real stack:
its channel layer is pointed at the stack's Redis, where the worker publishes the answers.
"""

import asyncio

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client

from console.models import Team
from core.redis import redis_client
from playground import answers, services

HOST = "testserver"


@pytest.fixture
def layer(stack, settings):
    """The channel layer of this process on the stack's Redis, and no room state left from a test before."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                                           "CONFIG": {"hosts": [stack.redis_url]}}}
    client = redis_client()
    for key in client.scan_iter("lanthorn:playground:*"):
        client.delete(key)
    yield


@pytest.fixture
def teammate(django_user_model):
    return django_user_model.objects.create_user("erin", "erin@example.org", "password")


@pytest.fixture
def team(member, teammate):
    team = Team.objects.create(name="research")
    team.members.add(member, teammate)
    return team


@pytest.fixture
def room(layer, member, team, default_model):
    """A team room opened by the member, answered greedily."""
    return services.create_conversation(owner=member, team=team, title="Research", model_name=default_model.name,
                                        temperature=0, max_tokens=16)


def cookie_for(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


def socket(room_id: int, cookie: bytes | None = None, *, origin: str = f"http://{HOST}", user_agent: str = "",
           client: tuple[str, int] | None = None) -> WebsocketCommunicator:
    """A browser's socket to the room: `cookie` from cookie_for(user) (sync code: take it before the loop);
    `client`: the address it comes from, as the ASGI server would say."""
    from lanthorn.asgi import application

    headers = [(b"host", HOST.encode()), (b"origin", origin.encode())]
    if cookie:
        headers.append((b"cookie", cookie))
    if user_agent:
        headers.append((b"user-agent", user_agent.encode()))
    communicator = WebsocketCommunicator(application, f"/ws/playground/rooms/{room_id}/", headers=headers)
    if client:
        communicator.scope["client"] = client
    return communicator


async def frames_until(ws: WebsocketCommunicator, done, *, timeout: float = 240) -> list[dict]:
    """Frames until one for which `done(frame)` is true (included); fails after `timeout` seconds
    (generous: the machine that runs the tests may be busy)."""
    frames = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        left = deadline - loop.time()
        try:
            frame = await ws.receive_json_from(timeout=left)
        except TimeoutError:
            raise AssertionError(f"no frame ended the wait in {timeout} s; got {frames}") from None
        frames.append(frame)
        if done(frame):
            return frames


def answer_saved(frame) -> bool:
    return frame["type"] == "message" and frame["message"]["role"] == "assistant"


async def settle(timeout: float = 30) -> None:
    """Waits for the answers still running in this loop (saving and unlocking their room)."""
    if answers._running:
        await asyncio.wait_for(asyncio.gather(*answers._running), timeout)
