"""Console operations: users, API keys and the usage trail."""

import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from console.models import ApiKey, UsageRecord, hash_key

KEY_PREFIX = "lt-"
LAST_USED_PRECISION = timedelta(minutes=1)


class InvalidKey(Exception):
    def __init__(self, message: str, *, reason: str):
        super().__init__(message)
        self.reason = reason  # missing_api_key, invalid_api_key or revoked_api_key


@dataclass
class NewKey:
    key: ApiKey
    raw: str  # shown once, never stored


def create_api_key(*, user, name: str) -> NewKey:
    raw = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey.objects.create(user=user, name=name, prefix=raw[:10], hashed_key=hash_key(raw))
    return NewKey(key=key, raw=raw)


def revoke_api_key(*, key: ApiKey) -> None:
    key.revoke()


def authenticate_key(*, raw: str) -> ApiKey:
    """The active key for a raw bearer token; InvalidKey otherwise."""
    if not raw:
        raise InvalidKey("You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.",
                         reason="missing_api_key")
    key = ApiKey.objects.select_related("user").filter(hashed_key=hash_key(raw)).first()
    if key is None:
        raise InvalidKey("Incorrect API key provided.", reason="invalid_api_key")
    if not key.is_active:
        raise InvalidKey("This API key has been revoked.", reason="revoked_api_key")
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_PRECISION:
        # A write per request would cost every request a database write; a minute is precise enough.
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key


def bearer_token(header: str) -> str:
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def ensure_admin(*, username: str = "admin", password: str | None = None) -> str | None:
    """Create the first admin once. Returns the password when one was made, else None."""
    User = get_user_model()
    with transaction.atomic():
        if User.objects.filter(username=username).exists():
            return None
        password = password or secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
    return password


def record_usage(**fields) -> UsageRecord:
    return UsageRecord.objects.create(**fields)
