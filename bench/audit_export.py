"""How fast the audit trail exports, and in how much memory: 1 M events on a throwaway SQLite
database, exported by `lanthorn audit export` (JSONL and CSV) in child processes, against a
baseline in the same invocation: the same rows read with the standard library's sqlite3 and
written out with no formatting at all (the floor). Goals: >= 50 k rows/s and < 150 MB peak RSS.

    .venv/bin/python bench/audit_export.py [--events 1000000]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD = """
import resource, sys, time
start = time.perf_counter()
{body}
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, file=sys.stderr)
"""
BASELINE = """
import sqlite3
db = sqlite3.connect(sys.argv[1])
with open(sys.argv[2], "w") as out:
    for seq, body, digest in db.execute("SELECT seq, body, hash FROM audit_auditevent ORDER BY seq"):
        out.write(body)
"""
LANTHORN = """
from lanthorn.cli import main
if main(["audit", "export", "--format", sys.argv[3], "-o", sys.argv[2]]):
    sys.exit(1)
"""


def run_child(body: str, env: dict, *args: str) -> tuple[float, int]:
    result = subprocess.run([sys.executable, "-c", CHILD.format(body=body), *args], env=env, cwd=ROOT,
                            capture_output=True, text=True, check=True)
    seconds, rss = result.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(rss)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lanthorn-audit-bench-") as home:
        env = {**os.environ, "LANTHORN_HOME": home, "PYTHONPATH": str(ROOT), "DATABASE_URL": "",
               "DJANGO_SETTINGS_MODULE": "lanthorn.settings"}
        env.pop("DATABASE_URL")
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], env=env, cwd=ROOT, check=True)
        os.environ.update(LANTHORN_HOME=home, DJANGO_SETTINGS_MODULE="lanthorn.settings")
        import django

        django.setup()
        from tests.audit.helpers import write_chain

        start = time.perf_counter()
        write_chain(args.events)
        print(f"wrote {args.events:,} chained events in {time.perf_counter() - start:.0f} s")
        database, out = f"{home}/lanthorn.sqlite3", f"{home}/export"
        base_s, base_rss = run_child(BASELINE, env, database, out)
        print(f"baseline (sqlite3, no formatting): {args.events / base_s:>9,.0f} rows/s  peak RSS {base_rss:>4} MB")
        for fmt in ("jsonl", "csv"):
            seconds, rss = run_child(LANTHORN, env, database, f"{out}.{fmt}", fmt)
            size = Path(f"{out}.{fmt}").stat().st_size
            print(f"lanthorn audit export --format {fmt:5}: {args.events / seconds:>9,.0f} rows/s  peak RSS {rss:>4} MB"
                  f"  ({size / 1e6:,.0f} MB written; {base_s / seconds:.2f} of the baseline's rate)")


if __name__ == "__main__":
    main()
