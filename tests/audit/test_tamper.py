"""Tamper evidence: the database refuses changes, the admin site is read-only, and `verify`
names the first edited, inserted or deleted event, in the database and in an export."""

import json
from datetime import UTC, datetime

import pytest
from django.db import DatabaseError, transaction

from audit import chain, services
from audit.models import AuditEvent, Checkpoint, format_time
from audit.selectors import Filters
from lanthorn.cli import main
from tests.audit.helpers import unguarded, write_chain

pytestmark = pytest.mark.django_db


@pytest.fixture
def trail():
    write_chain(10)


def test_it_refuses_to_update_an_event_in_the_database(trail):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(seq=3).update(outcome="error")


def test_it_refuses_to_delete_an_event_in_the_database(trail):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(seq=3).delete()


def test_the_admin_site_cannot_change_or_delete_an_event(client, admin, trail):
    client.force_login(admin)
    event = AuditEvent.objects.get(seq=3)
    url = f"/admin/audit/auditevent/{event.pk}/"

    assert client.get(url + "change/").status_code == 200  # it can be read
    client.post(url + "change/", {"outcome": "error", "action": "x"})
    client.post(url + "delete/", {"post": "yes"})

    assert client.get("/admin/audit/auditevent/add/").status_code == 403
    assert client.post(url + "delete/", {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.get(seq=3).outcome == "ok"


def test_verify_passes_an_intact_trail_with_its_count_and_head(trail, capsys):
    assert main(["audit", "verify"]) == 0
    head = AuditEvent.objects.get(seq=10).hash
    assert f"10 events verified; head {head}" in capsys.readouterr().out


def test_verify_names_an_event_whose_stored_body_was_edited_by_hand(trail, capsys):
    unguarded().execute("UPDATE audit_auditevent SET body = replace(body, 'gemma3-270m', 'other') WHERE seq = 8")

    assert main(["audit", "verify"]) == 1
    assert "event 8 was edited" in capsys.readouterr().err


def test_verify_names_an_event_edited_by_hand(trail, capsys):
    unguarded().execute("UPDATE audit_auditevent SET target = 'other-model' WHERE seq = 4")

    assert main(["audit", "verify"]) == 1
    assert "event 4 was edited" in capsys.readouterr().err


def test_verify_names_an_event_deleted_by_hand(trail, capsys):
    unguarded().execute("DELETE FROM audit_auditevent WHERE seq = 6")

    assert main(["audit", "verify"]) == 1
    assert "event 6 was deleted" in capsys.readouterr().err


def test_verify_names_the_newest_events_deleted_by_hand(trail, capsys):
    unguarded().execute("DELETE FROM audit_auditevent WHERE seq >= 9")

    assert main(["audit", "verify"]) == 1
    assert "event 9..10 was deleted" in capsys.readouterr().err


def test_verify_names_an_event_inserted_by_hand_even_with_a_valid_hash(trail, capsys):
    cursor = unguarded()
    cursor.execute("UPDATE audit_auditevent SET seq = seq + 1000 WHERE seq > 5")
    cursor.execute("UPDATE audit_auditevent SET seq = seq - 999 WHERE seq > 1000")
    before = AuditEvent.objects.get(seq=5)
    forged = {**{f: getattr(before, f) for f in chain.FIELDS}, "seq": 6, "actor_username": "mallory",
              "prev_hash": before.hash, "time": format_time(before.time)}
    forged["body"] = chain.body(forged)
    forged["hash"] = chain.sha256(forged["body"])
    forged["time"] = before.time
    AuditEvent.objects.create(**forged)

    assert main(["audit", "verify"]) == 1
    assert "event 6 was inserted" in capsys.readouterr().err


def test_a_purge_leaves_a_trail_that_verifies(trail):
    checkpoint = services.purge(before=datetime(2026, 1, 1, 0, 0, 4, tzinfo=UTC))

    assert (checkpoint.seq, checkpoint.purged) == (4, 4)
    assert list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True))[:2] == [5, 6]
    status = services.verify_trail()
    assert status.ok and status.count == 7  # 6 left and the purge's own event


def test_verify_refuses_a_checkpoint_forged_to_hide_deleted_events(trail, capsys):
    cursor = unguarded()
    cursor.execute("DELETE FROM audit_auditevent WHERE seq <= 3")
    Checkpoint.objects.create(time=datetime.now(UTC), seq=3, hash=_hash_of_event(3), purged=3,
                              before=datetime.now(UTC))

    assert main(["audit", "verify"]) == 1
    assert "not made by a purge" in capsys.readouterr().err


def _hash_of_event(seq: int) -> str:
    return AuditEvent.objects.get(seq=seq + 1).prev_hash


# Exports.

def export_lines(tmp_path) -> list[str]:
    path = tmp_path / "export.jsonl"
    assert main(["audit", "export", "--format", "jsonl", "-o", str(path)]) == 0
    return path.read_text().splitlines()


def write_lines(tmp_path, lines) -> str:
    path = tmp_path / "tampered.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_an_export_verifies_offline_and_carries_each_hash(trail, tmp_path, capsys):
    lines = export_lines(tmp_path)

    assert len(lines) == 10
    events = [json.loads(line) for line in lines]
    assert [e["prev_hash"] for e in events[1:]] == [e["hash"] for e in events[:-1]]
    assert main(["audit", "verify", "--file", str(tmp_path / "export.jsonl")]) == 0
    assert f"head {events[-1]['hash']}" in capsys.readouterr().out


def test_verify_file_names_an_edited_event(trail, tmp_path, capsys):
    lines = export_lines(tmp_path)
    lines[2] = lines[2].replace('"outcome":"ok"', '"outcome":"error"')

    assert main(["audit", "verify", "--file", write_lines(tmp_path, lines)]) == 1
    assert "event 3 was edited" in capsys.readouterr().err


def test_verify_file_names_a_deleted_event(trail, tmp_path, capsys):
    lines = export_lines(tmp_path)
    del lines[6]

    assert main(["audit", "verify", "--file", write_lines(tmp_path, lines)]) == 1
    assert "event 7 was deleted" in capsys.readouterr().err


def test_verify_file_names_an_inserted_event(trail, tmp_path, capsys):
    lines = export_lines(tmp_path)
    forged = json.loads(lines[4])
    forged.update(seq=6, prev_hash=forged["hash"], actor_username="mallory")
    forged["hash"] = chain.event_hash(forged)
    renumbered = [json.dumps({**json.loads(line), "seq": json.loads(line)["seq"] + 1}) for line in lines[5:]]

    assert main(["audit", "verify", "--file", write_lines(tmp_path, [*lines[:5], json.dumps(forged),
                                                                     *renumbered])]) == 1
    assert "event 6 was inserted" in capsys.readouterr().err


def test_the_readme_script_verifies_an_export(trail, tmp_path):
    """The README's twenty lines for outside auditors agree with `lanthorn audit verify --file`."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    script = re.search(r"```python\n(# verify_export\.py.*?)```", readme, re.S).group(1)
    (tmp_path / "verify_export.py").write_text(script)
    lines = export_lines(tmp_path)
    good = subprocess.run([sys.executable, tmp_path / "verify_export.py", tmp_path / "export.jsonl"],
                          capture_output=True, text=True, timeout=30)
    del lines[3]
    bad = subprocess.run([sys.executable, tmp_path / "verify_export.py", write_lines(tmp_path, lines)],
                         capture_output=True, text=True, timeout=30)

    assert good.returncode == 0 and "10 events" in good.stdout
    assert bad.returncode == 1 and "4" in bad.stderr


def test_an_export_is_itself_an_event(trail):
    list(services.export(format="csv", filters=Filters(action="request.chat")))

    [event] = AuditEvent.objects.filter(action="audit.export")
    assert event.details == {"format": "csv", "action": "request.chat"}
