"""A month of usage rows must not make the dashboard slow: times the dashboard's data endpoint
(`GET /dashboard.json`, what its script polls) on an empty scratch SQLite database, then with
ROWS usage rows spread over the last 30 days (three models, a hundred users), as an admin (every
row) and as a member (their own), and prints the medians and their ratio to the empty run.
The rows are generated in SQL, not through `record_usage`: the last day's are then added to the
per-minute rollup the dashboard reads, as `record_usage` would have done row by row.

    .venv/bin/python bench/dashboard.py [--rows 1000000] [--runs 7]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="lanthorn-bench-dashboard-"))
    os.environ.update(DATABASE_URL=f"sqlite:///{scratch / 'db.sqlite3'}", LANTHORN_HOME=str(scratch),
                      REDIS_URL="redis://127.0.0.1:1/0",  # nothing answers: the figures are the database's
                      DJANGO_SETTINGS_MODULE="lanthorn.settings", LOG_LEVEL="ERROR")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.test import Client
    from django.utils import timezone

    call_command("migrate", interactive=False, verbosity=0)
    users = get_user_model().objects
    admin = users.create_superuser("admin", "admin@example.org", "x")
    members = [users.create_user(f"user{i}", f"user{i}@example.org", "x") for i in range(100)]

    def median_ms(user) -> float:
        client = Client()
        client.force_login(user)
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            response = client.get("/dashboard.json")
            times.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200, response.status_code
        return statistics.median(times)

    empty_admin, empty_member = median_ms(admin), median_ms(members[0])

    print(f"inserting {args.rows:,} usage rows over 30 days ...", flush=True)
    now = timezone.now()
    # Generated inside SQLite (a recursive CTE): a million rows in seconds, not minutes.
    start = time.perf_counter()
    first_member = members[0].pk
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO console_usagerecord (created_at, request_id, user_id, endpoint, model_name, version_digest, "
            "prompt_tokens, completion_tokens, ttft_ms, latency_ms, status_code, outcome, error_code, finish_reason) "
            "WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < %s - 1), "
            "r AS (SELECT i, abs(random()) AS a, abs(random()) AS b, abs(random()) AS c FROM seq) "
            "SELECT strftime('%%Y-%%m-%%d %%H:%%M:%%f', %s, printf('-%%d seconds', a %% 2592000)), 'r' || i, "
            "%s + b %% 100, '/v1/chat/completions', "
            "CASE c %% 3 WHEN 0 THEN 'gemma3-270m' WHEN 1 THEN 'qwen2.5-0.5b-instruct' ELSE 'llama3.2-1b' END, '', "
            "5 + a %% 500, 1 + b %% 256, (100 + c %% 900) * (0.05 + (a %% 25) / 100.0), "
            "(100 + c %% 900) * (1 + (b %% 4000) / 1000.0), "
            "CASE WHEN a %% 100 < 2 THEN 500 ELSE 200 END, "
            "CASE WHEN a %% 100 < 2 THEN 'error' WHEN a %% 100 = 2 THEN 'cancelled' ELSE 'ok' END, '', 'stop' FROM r",
            [args.rows, now.strftime("%Y-%m-%d %H:%M:%S"), first_member])
    print(f"inserted in {time.perf_counter() - start:.0f} s", flush=True)
    start = time.perf_counter()
    from console.models import UsageRecord
    from console.services import add_to_rollup

    with transaction.atomic():
        add_to_rollup(rows=UsageRecord.objects.filter(created_at__gte=now - timedelta(days=1)).iterator(chunk_size=5000))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(f"last day added to the rollup in {time.perf_counter() - start:.0f} s", flush=True)

    full_admin, full_member = median_ms(admin), median_ms(members[0])
    print(f"\nGET /dashboard.json, median of {args.runs} (SQLite, {args.rows:,} rows over 30 days):")
    print(f"  admin (all rows):    empty {empty_admin:7.1f} ms   full {full_admin:7.1f} ms   "
          f"ratio {full_admin / empty_admin:5.2f}")
    print(f"  member (own rows):   empty {empty_member:7.1f} ms   full {full_member:7.1f} ms   "
          f"ratio {full_member / empty_member:5.2f}")
    print(f"target: under 1000 ms with the rows: {'met' if max(full_admin, full_member) < 1000 else 'NOT met'}")


if __name__ == "__main__":
    main()
