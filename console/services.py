"""Console operations: users, API keys and the usage trail."""

import secrets
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone

from console.models import ApiKey, UsageMinute, UsageMinuteBucket, UsageRecord, hash_key

KEY_PREFIX = "lt-"
LAST_USED_PRECISION = timedelta(minutes=1)


class InvalidKey(Exception):
    pass


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
        raise InvalidKey("You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.")
    key = ApiKey.objects.select_related("user").filter(hashed_key=hash_key(raw)).first()
    if key is None:
        raise InvalidKey("Incorrect API key provided.")
    if not key.is_active:
        raise InvalidKey("This API key has been revoked.")
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
    """Writes a request's usage row and adds it to the per-minute rollup the dashboard reads,
    in one transaction."""
    with transaction.atomic():
        row = UsageRecord.objects.create(**fields)
        add_to_rollup(rows=[row])
    return row


def add_to_rollup(*, rows) -> None:
    """Adds usage rows to the per-minute rollup (UsageMinute, UsageMinuteBucket): for everyone
    and for each row's user. Upserts that add to the counts, so concurrent writers never lose
    one. Only for rows not added before: `record_usage` does it for each new row; migration
    0004 and bench/dashboard.py for rows written without it."""
    from console.selectors import bucket_of

    totals: dict[tuple, list[int]] = {}  # (minute, model, scope) → [requests, errors, completion tokens]
    buckets: Counter = Counter()  # (minute, model, scope, metric, bucket) → requests
    for row in rows:
        minute = row.created_at.replace(second=0, microsecond=0)
        for scope in [""] + ([str(row.user_id)] if row.user_id else []):
            key = (minute, row.model_name, scope)
            sums = totals.setdefault(key, [0, 0, 0])
            sums[0] += 1
            sums[1] += row.outcome == "error"
            sums[2] += row.completion_tokens
            for metric, value in ((UsageMinuteBucket.LATENCY, row.latency_ms), (UsageMinuteBucket.TTFT, row.ttft_ms)):
                if value is not None:
                    buckets[key + (metric, bucket_of(value))] += 1
    _upsert(UsageMinute, ["minute", "model_name", "scope", "requests", "errors", "completion_tokens"],
            [(*key, *sums) for key, sums in totals.items()],
            unique=["scope", "minute", "model_name"])
    _upsert(UsageMinuteBucket, ["minute", "model_name", "scope", "metric", "bucket", "count"],
            [(*key, n) for key, n in buckets.items()], unique=["scope", "metric", "minute", "model_name", "bucket"])


def _upsert(model, columns: list[str], values: list[tuple], *, unique: list[str], batch: int = 500) -> None:
    """INSERT ... ON CONFLICT DO UPDATE adding the new counts to the old (SQLite and PostgreSQL
    alike); the columns after the `unique` ones are the counts."""
    if not values:
        return
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    counts = [c for c in columns if c not in unique]
    row = "(" + ", ".join(["%s"] * len(columns)) + ")"
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        for start in range(0, len(values), batch):
            chunk = values[start:start + batch]
            sql = (f"INSERT INTO {table} ({', '.join(map(quote, columns))}) VALUES {', '.join([row] * len(chunk))} "
                   f"ON CONFLICT ({', '.join(map(quote, unique))}) DO UPDATE SET "
                   + ", ".join(f"{quote(c)} = {table}.{quote(c)} + excluded.{quote(c)}" for c in counts))
            cursor.execute(sql, [adapt(v) if isinstance(v, datetime) else v for r in chunk for v in r])
