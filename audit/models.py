"""The audit trail: append-only, hash-chained events.

Who acted is copied onto the event (user id, username, key prefix) instead of being a foreign
key, so deleting a user or a key never blanks their history. Database triggers (see
audit/triggers.py) refuse UPDATE and DELETE; only `audit.services.purge` removes old events,
and it leaves a Checkpoint so that what remains still verifies.
"""

from datetime import UTC

from django.db import models

from audit import chain


class AuditEvent(models.Model):
    # Few indexes: each costs every request's append a write (time, action and user serve the
    # console's filters; exports read in sequence order and filter as they go).
    # Assigned by `audit.services.record`, never by the database; an auto field only because on
    # SQLite that makes it the rowid, so the table itself is stored in chain order.
    seq = models.BigAutoField(primary_key=True, help_text="position in the chain, 1, 2, 3, …")
    time = models.DateTimeField(db_index=True)
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor_username = models.CharField(max_length=150, blank=True, db_index=True)
    key_prefix = models.CharField(max_length=12, blank=True)
    source_ip = models.CharField(max_length=45, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    action = models.CharField(max_length=60, db_index=True)
    target = models.CharField(max_length=200, blank=True)
    outcome = models.CharField(max_length=20)
    details = models.JSONField(default=dict, blank=True)
    content_digest = models.CharField(max_length=64, blank=True,
                                      help_text="sha256 of the encrypted content, when content logging is on")
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)
    # The canonical JSON of the fields above, as hashed: exports stream it as it is, and verify
    # checks that it still matches both the hash and the columns.
    body = models.TextField()

    class Meta:
        ordering = ["-seq"]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} by {self.actor_username or '-'}"



def format_time(value) -> str:
    """UTC, always with microseconds (isoformat drops them when they are zero)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class AuditContent(models.Model):
    """A request's prompt and answer, encrypted (Fernet), kept for LANTHORN_AUDIT_CONTENT_DAYS.
    Outside the chain so that retention can delete it; its event carries the sha256 of `token`."""

    seq = models.PositiveBigIntegerField(primary_key=True)
    time = models.DateTimeField(db_index=True)
    token = models.TextField()


class Checkpoint(models.Model):
    """Where a purge cut the chain: the first remaining event follows `seq` and `hash`."""

    time = models.DateTimeField()
    seq = models.PositiveBigIntegerField(unique=True, help_text="the last event purged")
    hash = models.CharField(max_length=64, help_text="its hash")
    purged = models.PositiveBigIntegerField()
    before = models.DateTimeField()

    class Meta:
        ordering = ["-seq"]


class Head(models.Model):
    """The last event appended (one row), moved by every append; verify compares the chain's end
    with it, so that deleting the newest events shows. It also keeps the last verdict of verify."""

    seq = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64, default=chain.GENESIS)
    verified_at = models.DateTimeField(null=True, blank=True)
    verified_ok = models.BooleanField(null=True)
    verified_message = models.CharField(max_length=300, blank=True)
