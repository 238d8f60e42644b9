from rest_framework import authentication, exceptions

from console import services


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <key>` for the DRF endpoints."""

    def authenticate(self, request):
        header = request.headers.get("Authorization", "")
        if not header:
            return None
        try:
            key = services.authenticate_key(raw=services.bearer_token(header))
        except services.InvalidKey as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from exc
        return key.user, key

    def authenticate_header(self, request):
        return "Bearer"
