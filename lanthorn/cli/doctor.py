"""`lanthorn doctor`: checks this host and installation; exit status 0 only when all pass."""

import json
import sys


def cmd_doctor(args) -> None:
    from lanthorn.doctor import CHECKS, run_checks

    unknown = set(args.check or []) - set(CHECKS)
    if unknown:
        from lanthorn.cli.base import CommandError

        raise CommandError(f"no check named {', '.join(sorted(unknown))} (checks: {', '.join(CHECKS)})")
    checks = run_checks(only=args.check)
    if args.json:
        print(json.dumps({"ok": all(c.ok for c in checks), "checks": [c.as_dict() for c in checks]}, indent=2))
    else:
        for check in checks:
            print(f"{'ok  ' if check.ok else 'FAIL'} {check.name}: {check.message}")
            if not check.ok:
                print(f"     fix: {check.fix}")
        failed = sum(not c.ok for c in checks)
        print(f"\n{failed} of {len(checks)} checks failed." if failed else f"\nAll {len(checks)} checks passed.")
    if not all(c.ok for c in checks):
        sys.exit(1)


def register(sub) -> None:
    d = sub.add_parser("doctor", help="check this host and installation, with the fix for each problem")
    d.add_argument("--json", action="store_true", help="print the findings as JSON")
    d.add_argument("--check", action="append", metavar="NAME",
                   help="run only this check (repeatable): database, port, redis, workers, queues, disk, storage, "
                        "encoding, memory, cpu, integrity")
    d.set_defaults(func=cmd_doctor)
