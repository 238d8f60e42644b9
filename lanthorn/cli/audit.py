"""`lanthorn audit verify|purge|export`: the audit trail."""

import sys

from lanthorn.cli.base import CommandError


def _print_status(status) -> None:
    if not status.ok:
        raise CommandError(f"the audit trail does not verify: {status.message}")
    print(f"OK: {status.count} events verified; head {status.head_hash}")


def cmd_verify(args) -> None:
    from audit import services

    if args.file:
        status = services.verify_file(args.file)
    else:
        status = services.verify_trail()
    _print_status(status)


def cmd_purge(args) -> None:
    from audit import services
    from audit.selectors import BadFilter, parse_when

    try:
        before = parse_when(args.before, param="--before")
    except BadFilter as exc:
        raise CommandError(exc.message) from exc
    checkpoint = services.purge(before=before)
    if checkpoint is None:
        print(f"No events before {before.isoformat()}.")
    else:
        print(f"Purged {checkpoint.purged} events (up to event {checkpoint.seq}); checkpoint hash {checkpoint.hash}")


def cmd_export(args) -> None:
    from audit import services
    from audit.selectors import BadFilter, Filters

    try:
        filters = Filters.parse(vars(args))
    except BadFilter as exc:
        raise CommandError(exc.message) from exc
    out = open(args.output, "w", encoding="utf-8", newline="") if args.output else sys.stdout
    try:
        for text in services.export(format=args.format, filters=filters):
            out.write(text)
    finally:
        if out is not sys.stdout:
            out.close()


def register(sub) -> None:
    audit = sub.add_parser("audit", help="verify, purge and export the audit trail").add_subparsers(
        dest="audit_command", required=True)
    verify = audit.add_parser("verify", help="walk the hash chain: exit 0 with the count and head hash, or 1 "
                                             "naming the first edited, inserted or deleted event")
    verify.add_argument("--file", help="verify a JSONL export instead of the database (works offline)")
    verify.set_defaults(func=cmd_verify)
    purge = audit.add_parser("purge", help="delete events older than DATE, keeping a checkpoint so the rest verifies")
    purge.add_argument("--before", required=True, metavar="DATE", help="e.g. 2026-01-01 or 2026-01-01T00:00:00Z")
    purge.set_defaults(func=cmd_purge)
    export = audit.add_parser("export", help="write events as JSONL or CSV, each with its hash and the previous hash")
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    export.add_argument("--since", help="from this date or date-time (UTC)")
    export.add_argument("--until", help="up to this date (included) or date-time (excluded)")
    export.add_argument("--action", help="e.g. model.activate, or model. for every model.* action")
    export.add_argument("--user", help="the acting user's name")
    export.add_argument("--key", help="an API key's prefix")
    export.add_argument("--model", help="a model's name")
    export.add_argument("--outcome", help="ok, error or cancelled")
    export.add_argument("-o", "--output", help="a file (default: standard output)")
    export.set_defaults(func=cmd_export)
