"""Helpers for the audit tests: events of one action, a long valid chain written fast, tampering."""

import json
from datetime import UTC, datetime, timedelta

from django.db import connection, transaction

from audit import chain, triggers
from audit.models import AuditEvent, Head, format_time


def events_of(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("seq"))


def write_chain(n: int, *, start: datetime | None = None, batch: int = 5000) -> None:
    """Appends n valid events as `audit.services.record` would, fast (one INSERT per batch)."""
    last = AuditEvent.objects.order_by("-seq").values_list("seq", "hash").first() or (0, chain.GENESIS)
    seq, prev = last
    start = start or datetime(2026, 1, 1, tzinfo=UTC)
    columns = [*chain.FIELDS, "hash", "body"]
    sql = (f"INSERT INTO audit_auditevent ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})")
    rows = []
    for i in range(n):
        seq += 1
        fields = {"seq": seq, "time": start + timedelta(seconds=i), "actor_id": 7, "actor_username": "bob",
                  "key_prefix": "lt-abcdefg", "source_ip": "10.0.0.7", "user_agent": "openai-python/1.0",
                  "action": "request.chat", "target": "gemma3-270m", "outcome": "ok",
                  "details": {"prompt_tokens": 12, "completion_tokens": 96, "request_id": f"{i:032x}"},
                  "content_digest": "", "prev_hash": prev}
        body = chain.body({**fields, "time": format_time(fields["time"])})
        prev = chain.sha256(body)
        rows.append([*(_db_value(f, fields[f]) for f in chain.FIELDS), prev, body])
        if len(rows) == batch:
            _insert(sql, rows)
            rows = []
    _insert(sql, rows)
    Head.objects.update_or_create(pk=1, defaults={"seq": seq, "hash": prev})


def unguarded():
    """Drops the triggers, as someone editing the database by hand would (the test's transaction
    puts them back)."""
    triggers.drop()
    return connection.cursor()


def _db_value(field, value):
    return json.dumps(value) if field == "details" else value


def _insert(sql, rows) -> None:
    if rows:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(sql, rows)
