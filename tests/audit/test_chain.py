"""Appends from many connections at once still make one unbroken chain (SQLite: IMMEDIATE
transactions; PostgreSQL: the advisory lock)."""

import threading

import pytest
from django.db import connection

from audit import services
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db(transaction=True)


def test_concurrent_appends_make_one_chain():
    errors = []

    def append(n):
        try:
            for i in range(20):
                services.record(action="test.append", target=f"{n}:{i}")
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=append, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not errors
    # (a late event of an earlier test's request may land meanwhile: count this test's own)
    assert AuditEvent.objects.filter(action="test.append").count() == 80
    status = services.verify_trail()
    assert status.ok and status.count >= 80
