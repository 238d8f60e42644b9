"""The database refuses to change the audit trail: triggers on SQLite and PostgreSQL reject every
UPDATE and DELETE of an event or a checkpoint (and TRUNCATE on PostgreSQL).

They are created by the audit app's migration. `lanthorn audit purge` is the one controlled way
round them: in a single transaction it drops them, deletes the old events, records the
checkpoint and re-creates them. The transaction holds the write lock (SQLite) or the tables'
exclusive lock (PostgreSQL, taken by DROP TRIGGER) throughout, so no other connection ever
sees the trail unguarded, and a failure anywhere rolls the triggers back into place.
"""

from django.db import connection as default_connection

TABLES = ("audit_auditevent", "audit_checkpoint")

SQLITE_INSTALL = [
    f"""CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table}
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: {op} refused'); END"""
    for table in TABLES for op in ("UPDATE", "DELETE")
]
SQLITE_DROP = [f"DROP TRIGGER IF EXISTS {table}_no_{op.lower()}" for table in TABLES for op in ("UPDATE", "DELETE")]

POSTGRES_INSTALL = [
    """CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         RAISE EXCEPTION 'the audit trail is append-only: % on % refused', TG_OP, TG_TABLE_NAME;
       END $$""",
    *[f"""CREATE OR REPLACE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {table}
          FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()""" for table in TABLES],
]
POSTGRES_DROP = [f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}" for table in TABLES]


def _statements(connection, *, install: bool) -> list[str]:
    if connection.vendor == "sqlite":
        return SQLITE_INSTALL if install else SQLITE_DROP
    if connection.vendor == "postgresql":
        return POSTGRES_INSTALL if install else POSTGRES_DROP
    raise NotImplementedError(f"no audit triggers for {connection.vendor}")


def install(connection=default_connection) -> None:
    with connection.cursor() as cursor:
        for sql in _statements(connection, install=True):
            cursor.execute(sql)


def drop(connection=default_connection) -> None:
    with connection.cursor() as cursor:
        for sql in _statements(connection, install=False):
            cursor.execute(sql)


def installed(connection=default_connection) -> int:
    """How many of the triggers exist."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'audit_%'")
        else:
            cursor.execute("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'audit_%%_append_only'")
        return cursor.fetchone()[0]
