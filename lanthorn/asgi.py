"""The ASGI application: HTTP and WebSocket routes.

HTTP: the streaming doors are Channels consumers; everything else goes to Django.
WebSocket: browser sockets (the playground) get the session user through AuthMiddlewareStack
and an origin check; API sockets authenticate with a key themselves.
"""

import os

from django.core.asgi import get_asgi_application

from lanthorn.processes import die_with_supervisor

die_with_supervisor()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lanthorn.settings")
django_asgi_app = get_asgi_application()

# Imports that need Django set up.
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path, re_path  # noqa: E402

from core.http import BodyLimit  # noqa: E402
from core.websocket import SameOriginValidator  # noqa: E402
from inference import ollama  # noqa: E402
from inference.consumers import CompletionConsumer, EmbeddingsConsumer  # noqa: E402
from inference.session import warm_up  # noqa: E402
from inference.websocket import ApiSocketConsumer  # noqa: E402
from playground.consumers import RoomConsumer  # noqa: E402

# Sockets opened by the console's own pages (session cookie, same origin).
browser_websockets: list = [
    path("ws/playground/rooms/<int:room>/", RoomConsumer.as_asgi()),
]
# Sockets for programs (API key).
api_websockets: list = [
    path("ws/v1/chat", ApiSocketConsumer.as_asgi()),
]

router = ProtocolTypeRouter({
    # Every HTTP route has its body capped and timed (core/http.py).
    "http": BodyLimit(URLRouter([
        path("v1/chat/completions", CompletionConsumer.as_asgi(kind="chat")),
        path("v1/completions", CompletionConsumer.as_asgi(kind="completion")),
        path("v1/embeddings", EmbeddingsConsumer.as_asgi(kind="embedding")),
        # The Ollama-compatible API's streaming endpoints (its others are Django views).
        path("api/chat", ollama.ChatConsumer.as_asgi()),
        path("api/generate", ollama.GenerateConsumer.as_asgi()),
        path("api/embed", ollama.EmbedConsumer.as_asgi(kind="embedding")),
        path("api/pull", ollama.PullConsumer.as_asgi()),
        re_path(r"", django_asgi_app),
    ])),
    "websocket": URLRouter([
        *api_websockets,
        re_path(r"", AllowedHostsOriginValidator(SameOriginValidator(
            AuthMiddlewareStack(URLRouter(browser_websockets))))),
    ]),
})


async def application(scope, receive, send):
    """The router, and ASGI's lifespan: a web process makes ready what its first request would
    otherwise wait for (`inference.session.warm_up`) before it takes connections."""
    if scope["type"] != "lifespan":
        return await router(scope, receive, send)
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await warm_up()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
