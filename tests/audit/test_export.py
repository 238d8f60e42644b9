"""Exports stream from the API and the console; the auditor exports but cannot act."""

import csv
import io
import json
import tracemalloc

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.http import StreamingHttpResponse
from django.test import AsyncClient
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit import chain, services
from audit.models import AuditEvent
from console.services import create_api_key
from registry.models import Model
from tests.audit.helpers import unguarded, write_chain

pytestmark = pytest.mark.django_db

ROWS = 100_000


def test_an_export_of_100k_events_streams_in_bounded_memory_and_chunked_queries(admin):
    write_chain(ROWS)
    key = create_api_key(user=admin, name="export")

    async def consume():
        response = await AsyncClient().get("/api/audit?format=jsonl", headers={"Authorization": f"Bearer {key.raw}"})
        assert isinstance(response, StreamingHttpResponse) and response.is_async
        lines, biggest = 0, 0
        tracemalloc.start()
        async for chunk in response.streaming_content:
            lines += chunk.count(b"\n")
            biggest = max(biggest, len(chunk))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return lines, biggest, peak

    with CaptureQueriesContext(connection) as queries:
        lines, biggest, peak = async_to_sync(consume)()

    assert lines == ROWS + 1  # and the key.create event
    exported = [q["sql"] for q in queries.captured_queries if "audit_auditevent" in q["sql"]
                and q["sql"].lstrip().upper().startswith("SELECT") and "LIMIT" in q["sql"].upper()]
    assert len(exported) == (ROWS + 1) // services.EXPORT_CHUNK + 1  # a query per chunk, never one for all rows
    assert biggest < 2 * services.EXPORT_CHUNK * 1000  # a chunk of events at a time
    assert peak < 16 * 1024 * 1024  # the whole export as a list would be well over 100 MB


def test_the_api_exports_csv_filtered_with_hashes(admin):
    write_chain(5)
    key = create_api_key(user=admin, name="export")

    response = async_to_sync(AsyncClient().get)(
        "/api/audit", {"format": "csv", "action": "key.create"}, headers={"Authorization": f"Bearer {key.raw}"})
    body = b"".join(async_to_sync(_collect)(response)).decode()

    header, row = body.splitlines()
    assert header.endswith("prev_hash,hash")
    assert row.split(",")[7] == "key.create"


async def _collect(response):
    return [chunk async for chunk in response.streaming_content]


def test_the_api_refuses_a_bad_date_with_an_openai_error(admin):
    key = create_api_key(user=admin, name="export")

    response = async_to_sync(AsyncClient().get)("/api/audit", {"since": "last tuesday"},
                                                headers={"Authorization": f"Bearer {key.raw}"})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "since"


def test_a_member_cannot_export(client, member_key):
    response = client.get("/api/audit", HTTP_AUTHORIZATION=f"Bearer {member_key.raw}")

    assert response.status_code == 403
    assert not AuditEvent.objects.filter(action="audit.export").exists()


def test_the_auditor_exports_with_a_key_and_the_export_is_recorded(auditor):
    key = create_api_key(user=auditor, name="audit")

    response = async_to_sync(AsyncClient().get)("/api/audit", {"format": "jsonl"},
                                                headers={"Authorization": f"Bearer {key.raw}"})
    b"".join(async_to_sync(_collect)(response))

    assert response.status_code == 200
    [event] = AuditEvent.objects.filter(action="audit.export")
    assert (event.actor_username, event.key_prefix) == ("dana", key.key.prefix)


def test_the_auditor_exports_from_the_console(client, auditor):
    client.force_login(auditor)

    page = client.get(reverse("audit"))
    client.get(reverse("audit-export"), {"format": "csv"})

    assert page.status_code == 200 and b"Export" in page.content
    assert AuditEvent.objects.filter(action="audit.export", actor_username="dana").count() == 1


def test_the_auditor_cannot_act(client, auditor, member_key):
    Model.objects.create(name="tiny")
    client.force_login(auditor)

    config = client.patch("/api/models/tiny/config", {"temperature": 0.1}, content_type="application/json")
    revoke = client.post(reverse("key-revoke", args=[member_key.key.pk]))

    assert config.status_code == 403 and revoke.status_code == 403
    member_key.key.refresh_from_db()
    assert member_key.key.revoked_at is None
    assert not AuditEvent.objects.filter(action__in=["model.config", "key.revoke"]).exists()


def test_a_member_does_not_see_the_audit_page(client, member):
    client.force_login(member)

    assert client.get(reverse("audit")).status_code == 403
    assert b'href="/audit/"' not in client.get(reverse("dashboard")).content


def test_the_audit_page_shows_a_config_change_before_and_after(client, admin):
    Model.objects.create(name="tiny")
    client.force_login(admin)
    client.patch("/api/models/tiny/config", {"n_ctx": 1024}, content_type="application/json")
    event = AuditEvent.objects.get(action="model.config")

    listing = client.get(reverse("audit"), {"action": "model."}).content.decode()
    detail = client.get(reverse("audit-event", args=[event.seq])).content.decode()

    assert "model.config" in listing and 'href="/audit/"' in listing
    assert "Before and after" in detail and "1024" in detail


def test_an_export_lines_are_canonical_json():
    write_chain(3)

    lines = "".join(services.export(format="jsonl", filters=services.Filters())).splitlines()

    assert [json.loads(line)["seq"] for line in lines] == [1, 2, 3]


# CSV: what csv.writer makes of each stored body, however it is written (`services._fast_lines`).

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"


def varied_events(admin) -> None:
    services.record(action="request.chat", actor=admin, target="gemma3-270m", user_agent=BROWSER,
                    source_ip="2001:db8::1", details={"latency_ms": 1234.56, "ttft_ms": None, "status_code": 200,
                                                     "request_id": "ab12", "error_code": ""})
    services.record(action="auth.login_failed", actor_username="zoë, the admin", outcome="error",
                    details={"reason": 'said "no"\nand\tleft \\ 🙂', "tries": [1, 2.5, -3, 1e20, True, None]})
    services.record(action="model.config", actor=admin, target="tiny", details={
        "before": {"n_ctx": 1024, "stop": ["</s>", ","]}, "after": {"n_ctx": 2048, "stop": []}})
    services.record(action="user.role", actor_username="", details={})
    write_chain(5)


def written_by_csv_writer(rows) -> str:
    """The CSV that the export wrote before it had a fast path: each body parsed, written by csv.writer."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow((*chain.FIELDS, "hash"))
    for _, body, digest in rows:
        event = json.loads(body)
        event["details"] = json.dumps(event["details"], separators=(",", ":"), ensure_ascii=False)
        writer.writerow([*(event[f] for f in chain.FIELDS), digest])
    return out.getvalue()


def csv_export() -> tuple[str, list]:
    events = AuditEvent.objects.order_by("seq")
    return "".join(services._csv(events)), list(events.values_list("seq", "body", "hash"))


def rehashes(line: dict) -> bool:
    """Whether a CSV line's fields hash to its hash, as an auditor would check it."""
    event = {**line, "seq": json.loads(line["seq"]), "actor_id": json.loads(line["actor_id"] or "null"),
             "details": json.loads(line["details"])}
    return chain.event_hash(event) == line["hash"]


def test_a_csv_export_is_what_csv_writer_makes_of_each_body_edited_or_not(admin):
    varied_events(admin)
    services.record(action="auth.login_failed", actor_username='mallory "the" \\ admin', outcome="error")
    cursor = unguarded()
    for seq, edit in ((2, lambda body: body.replace('"tries":', '"tries": ')),  # whitespace
                      (3, lambda body: body.replace('"n_ctx":2048', '"n_ctx":2048.0,"n_ctx":1')),  # a duplicate key
                      (5, lambda body: body.replace("request.chat", "request.\\u0063hat")),  # an escape
                      (6, lambda body: body.replace('"seq":6', '"seq":6.0'))):
        cursor.execute("UPDATE audit_auditevent SET body = %s WHERE seq = %s",
                       [edit(AuditEvent.objects.get(seq=seq).body), seq])
    cursor.execute("UPDATE audit_auditevent SET target = 'other' WHERE seq = 7")  # a column, not the body
    write_chain(2 * services._CSV_BATCH)

    exported, rows = csv_export()

    assert exported == written_by_csv_writer(rows)
    lines = list(csv.DictReader(io.StringIO(exported)))[:10]
    assert [line["seq"] for line in lines] == ["1", "2", "3", "4", "5", "6.0", "7", "8", "9", "10"]
    # Bodies re-spelt (2, 5) still say what was hashed; changed values (3, 6) show as edited. (The column
    # edited on 7 is not in the body that exports copy: verify names it.)
    assert [rehashes(line) for line in lines] == [True, True, False, True, True, False, True, True, True, True]


def test_an_intact_trail_is_written_as_csv_without_parsing_each_body(admin):
    varied_events(admin)

    exported, rows = csv_export()

    assert services._fast_lines(rows) == exported.removeprefix(services.CSV_HEADER)
