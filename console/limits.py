"""Limits on API keys and people, held exactly under concurrency: each check-and-reserve is one
Lua script in Redis (redis-py's `register_script`), so no two requests can both see the last
free slot.

A request is admitted (`admit`) after validation, before it is queued. Admission reserves at once:
- a request in the **requests-per-minute** window: a sliding log (a sorted set of the admitted
  requests' times over the last 60 s), exact at every instant, not a fixed window that lets
  2 x rpm through around a minute's edge;
- a **concurrency** slot (a sorted set of request ids, each with an expiry, so that a process that
  died with a slot frees it after LANTHORN_REQUEST_TIMEOUT);
- **tokens** against the day's budget (UTC days): the prompt's estimate plus max_tokens, so that
  requests running side by side can never together spend more than the budget.
When the request ends (`release`, from the session's one finishing path), the concurrency slot is
freed and the unused tokens are refunded, so that the day's counter ends up equal to the tokens
the usage rows record.

The limits of a request with an API key are the key's; those of a person without a key (the
playground, the CLI shell) are the person's `UserLimits`. None means no limit.
"""

import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from django.conf import settings

from console import roles
from console.models import UserLimits
from core.redis import redis_client

WINDOW_MS = 60_000
PREFIX = "lanthorn:limits"

ADMIT = """
-- KEYS: the rpm log, the concurrency set, the day's token counter
-- ARGV: request id, rpm, concurrency, tokens per day (-1: no limit), tokens to reserve,
--       concurrency slot lifetime (ms), token counter lifetime (s)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = ARGV[1]
local rpm, conc, budget, tokens = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
if rpm >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60000)
  if redis.call('ZCARD', KEYS[1]) >= rpm then
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return {1, oldest[2] and (tonumber(oldest[2]) + 60000 - now) or 60000}
  end
end
if conc >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= conc then return {2, 1000} end
end
if budget >= 0 then
  local used = tonumber(redis.call('GET', KEYS[3]) or '0')
  if used + tokens > budget then return {3, used} end
end
if rpm >= 0 then
  redis.call('ZADD', KEYS[1], now, id)
  redis.call('PEXPIRE', KEYS[1], 60000)
end
if conc >= 0 then
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[6]), id)
  redis.call('PEXPIRE', KEYS[2], ARGV[6])
end
if budget >= 0 then
  redis.call('INCRBY', KEYS[3], tokens)
  redis.call('EXPIRE', KEYS[3], ARGV[7])
end
return {0, 0}
"""

RELEASE = """
-- KEYS: the concurrency set, the day's token counter; ARGV: request id, tokens to refund
redis.call('ZREM', KEYS[1], ARGV[1])
local refund = tonumber(ARGV[2])
if refund ~= 0 and redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('INCRBY', KEYS[2], -refund)
end
return 1
"""


class Refused(Exception):
    """A request the limits do not admit."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NotPermitted(Refused):
    """The person's role may not run models (auditors)."""


class ModelNotAllowed(Refused):
    pass


class LimitExceeded(Refused):
    def __init__(self, message: str, *, quota: bool, retry_after: int):
        super().__init__(message)
        self.quota = quota  # True: the day's token budget; False: a rate (rpm, concurrency)
        self.retry_after = retry_after  # seconds


@dataclass(frozen=True)
class Limits:
    rpm: int | None = None
    tokens_per_day: int | None = None
    concurrency: int | None = None

    @classmethod
    def of(cls, owner) -> "Limits":
        """The limits on an ApiKey or a UserLimits row."""
        return cls(rpm=owner.rpm, tokens_per_day=owner.tokens_per_day, concurrency=owner.concurrency)

    @property
    def unlimited(self) -> bool:
        return self.rpm is None and self.tokens_per_day is None and self.concurrency is None


@dataclass(frozen=True)
class Reservation:
    request_id: str
    concurrency_key: str
    tokens_key: str
    tokens: int  # reserved against the day's budget (0 when the budget is unlimited)


def _day(now: float) -> str:
    return datetime.fromtimestamp(now, timezone.utc).strftime("%Y%m%d")


def _seconds_to_midnight(now: float) -> int:
    today = datetime.fromtimestamp(now, timezone.utc)
    midnight = (today + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((midnight - today).total_seconds()) + 1)


def _keys(subject: str, now: float) -> tuple[str, str, str]:
    base = f"{PREFIX}:{subject}"
    return f"{base}:rpm", f"{base}:concurrency", f"{base}:tokens:{_day(now)}"


def _script(source: str):
    # A Script object runs EVALSHA, and EVAL once when Redis does not know the script yet.
    return redis_client().register_script(source)


def _limit(value: int | None) -> int:
    return -1 if value is None else value


def admit(*, api_key=None, user=None, model: str, request_id: str, tokens: int) -> Reservation | None:
    """Admits a request for `model` that may spend up to `tokens` (prompt estimate + max_tokens),
    reserving its share of the key's (or, without a key, the user's) limits. Raises Refused.
    Returns None when nothing is limited (nothing to release)."""
    person = api_key.user if api_key is not None else user
    if person is not None and roles.role_of(person) == roles.AUDITOR:
        raise NotPermitted("Auditors read usage; they do not run models.")
    if api_key is not None:
        if api_key.allowed_models and model not in api_key.allowed_models:
            raise ModelNotAllowed(f"This API key may not use the model '{model}'.")
        limits, subject = Limits.of(api_key), f"key:{api_key.pk}"
    elif user is not None:
        row = UserLimits.objects.filter(user=user).first()
        limits, subject = (Limits.of(row) if row else Limits()), f"user:{user.pk}"
    else:
        return None
    if limits.unlimited:
        return None
    now = time.time()
    rpm_key, concurrency_key, tokens_key = _keys(subject, now)
    tokens = tokens if limits.tokens_per_day is not None else 0
    if limits.tokens_per_day is not None and tokens > limits.tokens_per_day:
        raise LimitExceeded(f"This request may use up to {tokens} tokens (prompt and max_tokens), more than "
                            f"the {limits.tokens_per_day} a day allowed; lower max_tokens.",
                            quota=True, retry_after=_seconds_to_midnight(now))
    slot_ms = int((settings.LANTHORN_REQUEST_TIMEOUT + 60) * 1000)
    verdict, detail = _script(ADMIT)(
        keys=[rpm_key, concurrency_key, tokens_key],
        args=[request_id, _limit(limits.rpm), _limit(limits.concurrency), _limit(limits.tokens_per_day),
              tokens, slot_ms, 2 * 86400])
    if verdict == 1:
        raise LimitExceeded(f"Rate limit reached: {limits.rpm} requests per minute. Try again shortly.",
                            quota=False, retry_after=max(1, -(-int(detail) // 1000)))
    if verdict == 2:
        raise LimitExceeded(f"Too many requests at once: {limits.concurrency} allowed. Try again when one "
                            "has finished.", quota=False, retry_after=1)
    if verdict == 3:
        raise LimitExceeded(f"You exceeded your daily token budget ({limits.tokens_per_day} tokens; "
                            f"{int(detail)} used or reserved, this request needs up to {tokens}).",
                            quota=True, retry_after=_seconds_to_midnight(now))
    return Reservation(request_id=request_id, concurrency_key=concurrency_key, tokens_key=tokens_key,
                       tokens=tokens)


def release(reservation: Reservation, *, used_tokens: int) -> None:
    """Frees the request's concurrency slot and refunds the tokens it reserved but did not use."""
    refund = reservation.tokens - used_tokens if reservation.tokens else 0
    _script(RELEASE)(keys=[reservation.concurrency_key, reservation.tokens_key],
                     args=[reservation.request_id, refund])


def used_today(*, api_key=None, user=None) -> int:
    """Tokens the key (or the user without a key) spent or has reserved today."""
    return used_today_by_keys([api_key])[api_key.pk] if api_key is not None else \
        int(redis_client().get(_keys(f"user:{user.pk}", time.time())[2]) or 0)


def used_today_by_keys(keys) -> dict[int, int]:
    """Tokens each key spent or has reserved today, in one round trip."""
    keys = list(keys)
    if not keys:
        return {}
    now = time.time()
    values = redis_client().mget([_keys(f"key:{key.pk}", now)[2] for key in keys])
    return {key.pk: int(value or 0) for key, value in zip(keys, values)}
