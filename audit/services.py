"""Recording, verifying, purging and exporting the audit trail.

Appends are serialized so that each event chains to the one before: on SQLite by the IMMEDIATE
transaction every `transaction.atomic()` starts (settings), on PostgreSQL by a transaction-scoped
advisory lock. The Head row keeps the last event's sequence number and hash.
"""

import csv
import hashlib
import io
import itertools
import json
import operator
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit import chain, triggers
from audit.models import AuditContent, AuditEvent, Checkpoint, Head, format_time
from audit.selectors import Filters

ADVISORY_LOCK = 0x6C616E74686F726E & 0x7FFFFFFFFFFFFFFF  # "lanthorn"
EXPORT_CHUNK = 2000
FORMATS = ("jsonl", "csv")
CONTENT_EXPIRY_EVERY = 3600.0  # seconds between sweeps of expired content, per process
_content_swept = 0.0


def _lock() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK])


def _head() -> tuple[int, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT seq, hash FROM audit_head WHERE id = 1")
        head = cursor.fetchone()
    if head is None:  # a new trail (or one whose head row went missing): start from its last event
        last = AuditEvent.objects.order_by("-seq").values_list("seq", "hash").first()
        head = last or (0, chain.GENESIS)
        Head.objects.create(pk=1, seq=head[0], hash=head[1])
    return head


def _encrypt(content) -> str:
    from cryptography.fernet import Fernet

    return Fernet(settings.LANTHORN_CONTENT_KEY).encrypt(chain.canonical(content).encode()).decode()


def decrypt(token: str):
    from cryptography.fernet import Fernet

    return json.loads(Fernet(settings.LANTHORN_CONTENT_KEY).decrypt(token.encode()))


def _insert(event: dict) -> None:
    """One INSERT in plain SQL: every request appends an event, and the ORM's per-statement work
    cost more than the database's own (bench/audit_request.py)."""
    fields = [AuditEvent._meta.get_field(name) for name in event]
    sql = (f"INSERT INTO audit_auditevent ({', '.join(f.column for f in fields)}) "
           f"VALUES ({', '.join(['%s'] * len(fields))})")
    with connection.cursor() as cursor:
        cursor.execute(sql, [f.get_db_prep_save(event[f.name], connection) for f in fields])
        cursor.execute("UPDATE audit_head SET seq = %s, hash = %s WHERE id = 1", [event["seq"], event["hash"]])


def record(*, action: str, actor=None, actor_username: str = "", api_key=None, target: str = "",
           outcome: str = "ok", details: dict | None = None, source_ip: str = "", user_agent: str = "",
           content=None) -> int:
    """Appends one event to the chain; returns its sequence number."""
    if actor is None and api_key is not None:
        actor = api_key.user
    details = json.loads(json.dumps(details or {}, default=str))  # what is hashed is what is stored
    token = _encrypt(content) if content is not None and settings.LANTHORN_AUDIT_CONTENT else ""
    fields = {
        "actor_id": actor.pk if actor is not None else None,
        "actor_username": actor.get_username() if actor is not None else actor_username[:150],
        "key_prefix": api_key.prefix if api_key is not None else "",
        "source_ip": (source_ip or "")[:45],
        "user_agent": (user_agent or "")[:300],
        "action": action,
        "target": str(target)[:200],
        "outcome": outcome,
        "details": details,
        "content_digest": hashlib.sha256(token.encode()).hexdigest() if token else "",
    }
    with transaction.atomic():
        _lock()
        seq, prev_hash = _head()
        now = timezone.now()
        fields.update(seq=seq + 1, time=now, prev_hash=prev_hash)
        body = chain.body({**fields, "time": format_time(now)})
        _insert({**fields, "hash": chain.sha256(body), "body": body})
        if token:
            AuditContent.objects.create(seq=fields["seq"], time=now, token=token)
    if token:
        _sweep_content()
    return fields["seq"]


def _sweep_content() -> None:
    global _content_swept
    if time.monotonic() - _content_swept > CONTENT_EXPIRY_EVERY:
        _content_swept = time.monotonic()
        expire_content()


def expire_content() -> int:
    """Deletes stored prompts and answers older than LANTHORN_AUDIT_CONTENT_DAYS."""
    cutoff = timezone.now() - timedelta(days=settings.LANTHORN_AUDIT_CONTENT_DAYS)
    return AuditContent.objects.filter(time__lt=cutoff).delete()[0]


# Verification.

@dataclass
class Status:
    ok: bool
    count: int
    head_seq: int | None
    head_hash: str
    message: str
    broken_seq: int | None = None


def _chunks(queryset, *columns) -> Iterator[list[tuple]]:
    """Rows of `columns` (the first is `seq`) in sequence order, a chunk per query (memory stays flat)."""
    last = 0
    while True:
        rows = list(queryset.filter(seq__gt=last).order_by("seq").values_list(*columns)[:EXPORT_CHUNK])
        if rows:
            yield rows
        if len(rows) < EXPORT_CHUNK:
            return
        last = rows[-1][0]


def _db_events(queryset) -> Iterator[dict]:
    """Events as dicts of their columns, in sequence order; an event whose stored body no longer
    matches its hash shows as edited (its `hash` is blanked)."""
    columns = (*chain.FIELDS, "hash", "body")
    for rows in _chunks(queryset, *columns):
        for row in rows:
            event = dict(zip(columns, row))
            event["time"] = format_time(event["time"])
            if chain.sha256(event.pop("body")) != event["hash"]:
                event["hash"] = ""
            yield event


def verify_trail() -> Status:
    """Walks the whole chain from the last purge checkpoint (or the first event) to the head, and
    remembers the verdict on the Head row for the console."""
    checkpoint = Checkpoint.objects.order_by("-seq").first()
    start = (checkpoint.seq, checkpoint.hash) if checkpoint else (0, chain.GENESIS)
    head = Head.objects.filter(pk=1).first()
    vouched = checkpoint is None

    def events():
        nonlocal vouched
        for event in _db_events(AuditEvent.objects.all()):
            if (checkpoint is not None and event["action"] == "audit.purge"
                    and event["details"].get("checkpoint_seq") == checkpoint.seq
                    and event["details"].get("checkpoint_hash") == checkpoint.hash):
                vouched = True
            yield event

    try:
        result = chain.verify(events(), prev_seq=start[0], prev_hash=start[1])
        last_seq = result.head_seq if result.count else start[0]
        if head is not None and head.seq > last_seq:
            first = last_seq + 1
            raise chain.ChainBroken(first, f"event {first}{'' if first == head.seq else f'..{head.seq}'} was "
                                           f"deleted (the head records event {head.seq})")
        if head is not None and head.seq < last_seq:
            raise chain.ChainBroken(head.seq + 1, f"event {head.seq + 1} was inserted (the head records "
                                                  f"event {head.seq})")
        if not vouched:
            raise chain.ChainBroken(checkpoint.seq + 1, f"the checkpoint at event {checkpoint.seq} was not "
                                                        f"made by a purge (no audit.purge event names it)")
        status = Status(ok=True, count=result.count, head_seq=result.head_seq, head_hash=result.head_hash,
                        message=f"{result.count} events verified; head {result.head_hash}")
    except chain.ChainBroken as exc:
        status = Status(ok=False, count=0, head_seq=None, head_hash="", message=exc.message, broken_seq=exc.seq)
    Head.objects.filter(pk=1).update(verified_at=timezone.now(), verified_ok=status.ok,
                                     verified_message=status.message[:300])
    return status


def verify_file(path) -> Status:
    """Verifies an export (JSONL) without the database: each event's hash, and the links between
    consecutive events (an export of a time range is a contiguous piece of the chain)."""
    try:
        result = chain.verify(chain.read_jsonl(path))
    except chain.ChainBroken as exc:
        return Status(ok=False, count=0, head_seq=None, head_hash="", message=exc.message, broken_seq=exc.seq)
    return Status(ok=True, count=result.count, head_seq=result.head_seq, head_hash=result.head_hash,
                  message=f"{result.count} events verified; head {result.head_hash}")


# Retention.

def purge(*, before: datetime) -> Checkpoint | None:
    """Deletes the events older than `before` and records where it cut (a Checkpoint and an
    `audit.purge` event naming it), so that the rest still verifies. See audit/triggers.py for how
    it gets past the triggers."""
    with transaction.atomic():
        _lock()
        last = AuditEvent.objects.filter(time__lt=before).order_by("-seq").first()
        if last is None:
            return None
        triggers.drop()
        purged = AuditEvent.objects.filter(seq__lte=last.seq).delete()[0]
        AuditContent.objects.filter(seq__lte=last.seq).delete()
        checkpoint = Checkpoint.objects.create(time=timezone.now(), seq=last.seq, hash=last.hash, purged=purged,
                                               before=before)
        triggers.install()
        from core.actions import announce

        announce("audit.purge", target=f"before {before.isoformat()}",
                 details={"before": before.isoformat(), "purged": purged, "checkpoint_seq": last.seq,
                          "checkpoint_hash": last.hash})
    return checkpoint


# Export.

def export(*, format: str, filters: Filters) -> Iterator[str]:
    """Records the export (`audit.export`), then yields the file's text a chunk of events at a time:
    the events as they stood before the export, in sequence order, each with its hash and the
    previous hash."""
    from core.actions import announce

    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}: use jsonl or csv")
    upto = _head()[0]
    announce("audit.export", target=format, details={"format": format, **filters.as_dict()})
    events = filters.apply(AuditEvent.objects.filter(seq__lte=upto))
    return _jsonl(events) if format == "jsonl" else _csv(events)


def _jsonl(events) -> Iterator[str]:
    """Each line is the stored body with its hash added (a JSON object ends with "}")."""
    for rows in _chunks(events, "seq", "body", "hash"):
        yield "".join(f'{body[:-1]},"hash":"{digest}"}}\n' for _, body, digest in rows)


def _csv(events) -> Iterator[str]:
    """The columns of FIELDS and the hash; `details` as canonical JSON (the body's keys are sorted already)."""
    yield CSV_HEADER
    for rows in _chunks(events, "seq", "body", "hash"):
        yield "".join(_csv_rows(rows[i:i + _CSV_BATCH]) for i in range(0, len(rows), _CSV_BATCH))


# A CSV line is what csv.writer makes of the fields of the parsed body, and the hash (`_csv_line`).
# Parsing each body and writing it through csv.writer took most of an export's time, and a body is
# canonical JSON of a known shape: `_fast_lines` cuts a chunk of bodies at their quotes (no string
# in them holds one) and writes the lines itself. It does so only where that gives exactly what
# csv.writer would: where each body is rebuilt byte for byte from the pieces cut from it, its
# strings hold nothing that JSON would unescape or CSV would quote but a comma, its numbers are as
# Python writes them, and its `details` decode on their own to what encodes back to the very same
# text. A chunk with any other body (one edited by hand, say) is halved until that body is alone,
# and csv.writer writes it: an export still says what it always said, edited events included.

_CSV_DUMPS = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_DECODE = json.JSONDecoder().raw_decode  # the value at the start of a text, and where it ends
# Where the fields are among the pieces of a body split at its quotes: those before details split
# from the start, those after from the end (details hold quotes); actor_id and seq come as ":7,".
_HEAD, _HEAD_QUOTES = operator.itemgetter(3, 6, 9, 13), 14
_TAIL, _TAIL_QUOTES = operator.itemgetter(-28, -24, -20, -17, -14, -10, -6, -2), 29
_CSV_COMMAS = len(chain.FIELDS)  # between the fields of a CSV line
_CSV_BATCH = 100  # rows cut at once: their pieces stay in the CPU's cache between the passes over them
_ESCAPED = bytes(range(32)) + b"\\"  # what a JSON string escapes but the quote (line breaks among them)
_DIGITS, _HEX = b"0123456789", b"0123456789abcdef"
_LONGEST_NUMBER = len(":9223372036854775807,")


def _written(values) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(values)
    return buffer.getvalue()


CSV_HEADER = _written((*chain.FIELDS, "hash"))


def _csv_line(body: str, digest: str) -> str:
    """csv.writer's line for the fields of the parsed body and the hash (the slow path)."""
    event = json.loads(body)
    return _written([*(_CSV_DUMPS(event[f]) if f == "details" else event[f] for f in chain.FIELDS), digest])


def _csv_rows(rows) -> str:
    """The CSV lines of a chunk of (seq, body, hash) rows: all at once where it can, else in halves."""
    if not rows:
        return ""
    lines = _fast_lines(rows)
    if lines is not None:
        return lines
    if len(rows) == 1:
        return _csv_line(rows[0][1], rows[0][2])
    return _csv_rows(rows[:len(rows) // 2]) + _csv_rows(rows[len(rows) // 2:])


def _fast_lines(rows) -> str | None:
    """The CSV lines of (seq, body, hash) rows, or None unless every body is as `chain.body` writes it."""
    n, repeat, getitem, second = len(rows), itertools.repeat, operator.getitem, operator.itemgetter(1)
    bodies = list(map(second, rows))
    try:
        heads = list(map(_HEAD, map(str.split, bodies, repeat('"'), repeat(_HEAD_QUOTES))))
        tails = list(map(_TAIL, map(str.rsplit, bodies, repeat('"'), repeat(_TAIL_QUOTES))))
    except IndexError:  # too few quotes
        return None
    starts = map(operator.add, map(str.find, bodies, repeat('"details":')), repeat(len('"details":')))
    details = list(map(getitem, bodies, map(slice, starts, map(str.rfind, bodies, repeat(',"key_prefix":"')))))
    in_details = "".join(details)
    lines = _lines(rows, heads, tails, details, quote=False)
    if lines is not None and lines.count(",") != _CSV_COMMAS * n + in_details.count(","):
        lines = _lines(rows, heads, tails, details, quote=True)  # some strings hold a comma
    if lines is None:
        return None
    written = lines.encode("utf-8", "surrogatepass")
    numbers = [*filter(":null,".__ne__, map(second, heads)), *map(operator.itemgetter(3), tails)]
    digits = ("\n" + "\n".join(numbers) + "\n").encode("utf-8", "surrogatepass")  # each "\n:7,"
    hashes = "".join(map(operator.itemgetter(2), rows)).encode("utf-8", "surrogatepass")
    if (len(written) - len(written.translate(None, _ESCAPED)) != 2 * n + in_details.count("\\")
            or digits.translate(None, _DIGITS) != b"\n:," * len(numbers) + b"\n" or b":," in digits
            or digits.count(b"\n:") != len(numbers) or digits.count(b",\n") != len(numbers)
            or digits.count(b":0") != digits.count(b":0,") or max(map(len, numbers)) > _LONGEST_NUMBER
            or hashes.translate(None, _HEX)):
        return None  # a backslash or control character outside details (but \r\n); a number not as Python writes
                     # it (or longer than a database's); a hash that is not hex
    try:
        decoded = list(map(_DECODE, details))
        values = list(map(operator.itemgetter(0), decoded))
        if (list(map(second, decoded)) != list(map(len, details)) or not set(map(type, values)) <= {dict}
                or _CSV_DUMPS(values) != f"[{','.join(details)}]"):  # more than a value; a value spelt otherwise
            return None
    except (ValueError, RecursionError):
        return None
    return lines


def _lines(rows, heads, tails, details, *, quote: bool) -> str | None:
    """The CSV lines of the rows, from the fields cut from their bodies; None unless each body is those
    fields in the order and with the keys that `chain.body` writes. `quote`: the strings with a comma."""
    lines = []
    for (_, body, digest), (action, actor_id, username, content_digest), (
            key_prefix, outcome, prev_hash, seq, source_ip, target, time_, user_agent), text in zip(
            rows, heads, tails, details):
        if body != (f'{{"action":"{action}","actor_id"{actor_id}"actor_username":"{username}","content_digest":'
                    f'"{content_digest}","details":{text},"key_prefix":"{key_prefix}","outcome":"{outcome}",'
                    f'"prev_hash":"{prev_hash}","seq"{seq}"source_ip":"{source_ip}","target":"{target}",'
                    f'"time":"{time_}","user_agent":"{user_agent}"}}'):
            return None
        text = "{}" if text == "{}" else '"' + text.replace('"', '""') + '"'
        if quote:
            time_, username, key_prefix, source_ip, user_agent, action, target, outcome, content_digest, prev_hash = (
                f'"{v}"' if "," in v else v for v in (time_, username, key_prefix, source_ip, user_agent, action,
                                                       target, outcome, content_digest, prev_hash))
        lines.append(f"{seq[1:-1]},{time_},{'' if actor_id == ':null,' else actor_id[1:-1]},{username},"
                     f"{key_prefix},{source_ip},{user_agent},{action},{target},{outcome},{text},{content_digest},"
                     f"{prev_hash},{digest}\r\n")
    return "".join(lines)
