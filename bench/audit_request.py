"""What the audit trail adds to a request: `inference.services.finish_request` (the usage row,
and with the audit app's receiver connected also the request's chained event, in one transaction)
timed with and without the receiver, alternating blocks, in one invocation on a throwaway
SQLite database with a chain of --chain events already there.

    .venv/bin/python bench/audit_request.py [--requests 2000] [--chain 100000]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--chain", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lanthorn-audit-bench-") as home:
        env = {**os.environ, "LANTHORN_HOME": home, "DJANGO_SETTINGS_MODULE": "lanthorn.settings"}
        env.pop("DATABASE_URL", None)
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], env=env, cwd=ROOT, check=True)
        os.environ.update(LANTHORN_HOME=home, DJANGO_SETTINGS_MODULE="lanthorn.settings")
        os.environ.pop("DATABASE_URL", None)
        import django

        django.setup()
        from django.contrib.auth import get_user_model

        from audit.receivers import record_action
        from console.services import create_api_key
        from core.actions import action_done
        from inference.services import ApiCall, finish_request
        from tests.audit.helpers import write_chain

        write_chain(args.chain)
        user = get_user_model().objects.create_user("bench")
        key = create_api_key(user=user, name="bench").key
        per_block = 100
        timings = {True: [], False: []}
        for block in range(args.requests // per_block):
            audited = block % 2 == 0
            if not audited:
                action_done.disconnect(dispatch_uid="audit.record")
            for _ in range(per_block):
                call = ApiCall(endpoint="/v1/chat/completions", api_key=key, model_name="gemma3-270m",
                               prompt_tokens=12, completion_tokens=96, source_ip="127.0.0.1", user_agent="bench")
                start = time.perf_counter()
                finish_request(call=call)
                timings[audited].append((time.perf_counter() - start) * 1000)
            if not audited:
                action_done.connect(record_action, dispatch_uid="audit.record")
        without, with_audit = statistics.median(timings[False]), statistics.median(timings[True])
        print(f"finish_request, usage row only:        median {without:.3f} ms  p95 "
              f"{statistics.quantiles(timings[False], n=20)[-1]:.3f} ms")
        print(f"finish_request, usage row + audit event: median {with_audit:.3f} ms  p95 "
              f"{statistics.quantiles(timings[True], n=20)[-1]:.3f} ms")
        print(f"the audit event adds {with_audit - without:.3f} ms a request ({with_audit / without:.2f}x the "
              f"record step), after the answer's last token has been sent")


if __name__ == "__main__":
    main()
