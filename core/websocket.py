"""Origin check for the sockets that browsers open with the session cookie."""

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier


class SameOriginValidator:
    """Refuses a socket whose `Origin` is not the server it connects to (its `Host` header): a page on
    another site (or another port of this host) must not chat with a signed-in person's cookie.
    Channels' AllowedHostsOriginValidator lets every origin through while ALLOWED_HOSTS is `*`."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        headers = dict(scope.get("headers", []))
        origin = headers.get(b"origin", b"").decode("latin-1")
        host = headers.get(b"host", b"").decode("latin-1").lower()
        if origin and host and urlsplit(origin).netloc.lower() == host:
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)
