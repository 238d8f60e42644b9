"""Console operations: people, roles and teams, API keys and their limits, the usage trail.

Every administrative act is announced (`core.actions.announce`) where it happens, with who did
it (`actor`) and from where (`origin`: `core.actions.request_origin(request)`, or none from the CLI).
Refusals are ConsoleError, with a message for people.
"""

import secrets
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.db import connection, transaction
from django.utils import timezone

from console import roles, selectors
from console.models import ApiKey, Team, UsageMinute, UsageMinuteBucket, UsageRecord, UserLimits, hash_key
from core.actions import announce

KEY_PREFIX = "lt-"
LAST_USED_PRECISION = timedelta(minutes=1)


LIMIT_FIELDS = ("rpm", "tokens_per_day", "concurrency")
LIMIT_NAMES = {"rpm": "requests per minute", "tokens_per_day": "tokens per day",
               "concurrency": "concurrent requests"}


class InvalidKey(Exception):
    def __init__(self, message: str, *, reason: str):
        super().__init__(message)
        self.reason = reason  # what counts the refusal: missing_api_key, invalid_api_key, ...


class ConsoleError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


# People and roles.

@dataclass
class NewUser:
    user: object
    password: str  # shown once, never stored


def create_user(*, username: str, role: str = roles.MEMBER, password: str | None = None, actor=None,
                origin: dict | None = None) -> NewUser:
    """A new person with a role; without `password`, a generated one to show once."""
    User = get_user_model()
    username = username.strip()
    if not username:
        raise ConsoleError("Give the user a name.")
    if role not in roles.ROLES:
        raise ConsoleError(f"Unknown role {role!r}: use one of {', '.join(roles.ROLES)}.")
    password = password or secrets.token_urlsafe(12)
    with transaction.atomic():
        if User.objects.filter(username__iexact=username).exists():
            raise ConsoleError(f"A user named {username!r} already exists.")
        user = User.objects.create_user(username=username, password=password)
        roles.set_role(user=user, role=role)
    announce("user.create", actor=actor, target=username, details={"role": role}, **(origin or {}))
    return NewUser(user=user, password=password)


def set_role(*, user, role: str, actor=None, origin: dict | None = None) -> None:
    if role not in roles.ROLES:
        raise ConsoleError(f"Unknown role {role!r}: use one of {', '.join(roles.ROLES)}.")
    if actor is not None and actor.pk == user.pk and role != roles.ADMIN:
        raise ConsoleError("You cannot take away your own admin role; ask another admin.")
    before = roles.role_of(user)
    roles.set_role(user=user, role=role)
    announce("user.role", actor=actor, target=user.username, details={"from": before, "to": role},
             **(origin or {}))


def end_sessions(*, user) -> int:
    """Signs the person out everywhere (their console sessions are deleted)."""
    ended = [s.pk for s in Session.objects.filter(expire_date__gt=timezone.now())
             if s.get_decoded().get("_auth_user_id") == str(user.pk)]
    Session.objects.filter(pk__in=ended).delete()
    return len(ended)


def deactivate_user(*, user, actor=None, origin: dict | None = None) -> None:
    """The person can no longer sign in; their sessions end and their keys stop at once (a key
    counts as active only while its owner is)."""
    if actor is not None and actor.pk == user.pk:
        raise ConsoleError("You cannot deactivate yourself.")
    user.is_active = False
    user.save(update_fields=["is_active"])
    sessions = end_sessions(user=user)
    announce("user.deactivate", actor=actor, target=user.username, details={"sessions_ended": sessions},
             **(origin or {}))


def reactivate_user(*, user, actor=None, origin: dict | None = None) -> None:
    user.is_active = True
    user.save(update_fields=["is_active"])
    announce("user.reactivate", actor=actor, target=user.username, **(origin or {}))


def set_user_limits(*, user, rpm: int | None, tokens_per_day: int | None, concurrency: int | None,
                    actor=None, origin: dict | None = None) -> UserLimits:
    """The person's own limits (playground, CLI shell), the defaults of their new keys and, for a
    member, the ceiling of those keys' limits."""
    values = {"rpm": rpm, "tokens_per_day": tokens_per_day, "concurrency": concurrency}
    _check_limits(values)
    row, _ = UserLimits.objects.update_or_create(user=user, defaults=values)
    announce("user.limits", actor=actor, target=user.username, details=values, **(origin or {}))
    return row


def user_limits(user) -> dict:
    return limits_of(UserLimits.objects.filter(user=user).first())


def limits_of(row: UserLimits | ApiKey | None) -> dict:
    return {f: getattr(row, f) if row else None for f in LIMIT_FIELDS}


# Teams.

def create_team(*, name: str, members=(), actor=None, origin: dict | None = None) -> Team:
    name = name.strip()
    if not name:
        raise ConsoleError("Give the team a name.")
    with transaction.atomic():
        if Team.objects.filter(name__iexact=name).exists():
            raise ConsoleError(f"A team named {name!r} already exists.")
        team = Team.objects.create(name=name)
        team.members.add(*members)
    announce("team.create", actor=actor, target=name,
             details={"members": sorted(u.username for u in members)}, **(origin or {}))
    return team


def add_team_member(*, team: Team, user, actor=None, origin: dict | None = None) -> None:
    team.members.add(user)
    announce("team.add", actor=actor, target=team.name, details={"user": user.username}, **(origin or {}))


def remove_team_member(*, team: Team, user, actor=None, origin: dict | None = None) -> None:
    team.members.remove(user)
    announce("team.remove", actor=actor, target=team.name, details={"user": user.username}, **(origin or {}))


# API keys.

@dataclass
class NewKey:
    key: ApiKey
    raw: str  # shown once, never stored


def _check_limits(values: dict) -> None:
    for field, value in values.items():
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ConsoleError(f"{LIMIT_NAMES[field].capitalize()} must be a whole number of at least 1 "
                               "(or empty: no limit).")


def _check_models(models: list[str]) -> list[str]:
    from registry.models import Model

    models = sorted({m.strip() for m in models if m.strip()})
    unknown = set(models) - set(Model.objects.filter(name__in=models).values_list("name", flat=True))
    if unknown:
        raise ConsoleError(f"No model named {', '.join(sorted(unknown))}.")
    return models


def _key_limits(*, owner, actor, values: dict) -> dict:
    """The limits a key gets: what was asked, else the owner's defaults. A member (managing their
    own keys) can tighten their limits but not loosen them; an admin sets any."""
    _check_limits(values)
    defaults = user_limits(owner)
    limits = {f: defaults[f] if values.get(f) is None else values[f] for f in LIMIT_FIELDS}
    if actor is not None and not roles.is_admin(actor):
        for field, ceiling in defaults.items():
            if ceiling is not None and limits[field] > ceiling:
                raise ConsoleError(f"Your keys may have at most {ceiling} {LIMIT_NAMES[field]}; "
                                   "ask an admin for more.")
    return limits


def _check_key_manager(*, owner, actor) -> None:
    # An auditor's key reads the audit trail and usage (GET /api/audit); the inference doors refuse it.
    if roles.role_of(owner) is None:
        raise ConsoleError(f"{owner.username} is deactivated and cannot have API keys.")
    if actor is not None and actor.pk != owner.pk and not roles.is_admin(actor):
        raise ConsoleError("Only an admin manages other people's keys.")


def create_api_key(*, user, name: str, actor=None, origin: dict | None = None, rpm: int | None = None,
                   tokens_per_day: int | None = None, concurrency: int | None = None,
                   models: list[str] = (), expires_at: datetime | None = None) -> NewKey:
    """A key for `user`, created by `actor` (None: the operator at the CLI). Limits left None take
    the owner's defaults."""
    name = name.strip()
    if not name:
        raise ConsoleError("Give the key a name, e.g. “laptop” or “ci”.")
    _check_key_manager(owner=user, actor=actor)
    limits = _key_limits(owner=user, actor=actor,
                         values={"rpm": rpm, "tokens_per_day": tokens_per_day, "concurrency": concurrency})
    allowed = _check_models(list(models))
    if expires_at is not None and expires_at <= timezone.now():
        raise ConsoleError("The expiry must be in the future.")
    raw = KEY_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():  # the key and its audit event, or neither
        key = ApiKey.objects.create(user=user, name=name, prefix=raw[:10], hashed_key=hash_key(raw),
                                    allowed_models=allowed, expires_at=expires_at, **limits)
        announce("key.create", actor=actor, api_key=key, target=f"{user.username}/{name}",
                 details={**limits, "models": allowed,
                          "expires_at": expires_at.isoformat() if expires_at else None},
                 **(origin or {}))
    return NewKey(key=key, raw=raw)


def set_key_limits(*, key: ApiKey, actor=None, origin: dict | None = None, rpm: int | None,
                   tokens_per_day: int | None, concurrency: int | None, models: list[str],
                   expires_at: datetime | None) -> None:
    """Replaces a key's limits (None: no limit; `models` empty: all models)."""
    _check_key_manager(owner=key.user, actor=actor)
    values = {"rpm": rpm, "tokens_per_day": tokens_per_day, "concurrency": concurrency}
    _check_limits(values)
    if actor is not None and not roles.is_admin(actor):
        values = _key_limits(owner=key.user, actor=actor, values=values)
    key.allowed_models = _check_models(list(models))
    key.expires_at = expires_at
    for field, value in values.items():
        setattr(key, field, value)
    key.save(update_fields=["allowed_models", "expires_at", *LIMIT_FIELDS])
    announce("key.limits", actor=actor, api_key=key, target=f"{key.user.username}/{key.name}",
             details={**values, "models": key.allowed_models,
                      "expires_at": expires_at.isoformat() if expires_at else None}, **(origin or {}))


def revoke_api_key(*, key: ApiKey, actor=None, origin: dict | None = None) -> None:
    if actor is not None and actor.pk != key.user_id and not roles.is_admin(actor):
        raise ConsoleError("Only an admin revokes other people's keys.")
    with transaction.atomic():
        key.revoke()
        announce("key.revoke", actor=actor, api_key=key, target=f"{key.user.username}/{key.name}",
                 **(origin or {}))


def authenticate_key(*, raw: str) -> ApiKey:
    """The active key for a raw bearer token; InvalidKey otherwise."""
    if not raw:
        raise InvalidKey("You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.",
                         reason="missing_api_key")
    key = selectors.key_by_hash(hash_key(raw))
    if key is None:
        raise InvalidKey("Incorrect API key provided.", reason="invalid_api_key")
    if key.revoked_at is not None:
        raise InvalidKey("This API key has been revoked.", reason="revoked_api_key")
    if not key.user.is_active:
        raise InvalidKey("This API key's owner has been deactivated.", reason="inactive_user")
    if key.is_expired:
        raise InvalidKey(f"This API key expired on {key.expires_at:%Y-%m-%d %H:%M} UTC.", reason="expired_api_key")
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_PRECISION:
        # A write per request would cost every request a database write; a minute is precise enough.
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now  # on this process's copy too
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
    0005 and bench/dashboard.py for rows written without it."""
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
