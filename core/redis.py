"""The process's Redis client (Celery queues, the channel layer, heartbeats and cancel flags share it)."""

from functools import cache

import redis
from django.conf import settings


@cache
def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)
