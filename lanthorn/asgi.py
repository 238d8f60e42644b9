import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lanthorn.settings")
django_asgi_app = get_asgi_application()

# Imports that need Django set up.
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path, re_path  # noqa: E402

from inference.consumers import CompletionConsumer  # noqa: E402

application = ProtocolTypeRouter({
    "http": URLRouter([
        path("v1/chat/completions", CompletionConsumer.as_asgi(kind="chat")),
        path("v1/completions", CompletionConsumer.as_asgi(kind="completion")),
        re_path(r"", django_asgi_app),
    ]),
})
