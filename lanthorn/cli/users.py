"""`lanthorn users create|list|role|limits|deactivate|reactivate` and `lanthorn teams create|add|remove|list`:
people, roles and teams, as the operator at the machine (the acts are announced with no actor)."""

import sys

from lanthorn.cli.base import CommandError, user as find_user


def _services():
    from console import services

    return services


def _run(action):
    services = _services()
    try:
        return action()
    except services.ConsoleError as exc:
        raise CommandError(exc.message) from exc


def cmd_users_create(args) -> None:
    password = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
        if not password:
            raise CommandError("no password on stdin")
    new = _run(lambda: _services().create_user(username=args.name, role=args.role, password=password))
    print(f"Created {args.role} {new.user.username}.", end="")
    if args.password_stdin:
        print()
        return
    print(" The password is shown only now:")
    print(new.password)


def cmd_users_list(args) -> None:
    from django.contrib.auth import get_user_model

    from console import roles

    people = get_user_model().objects.order_by("username").prefetch_related("groups", "teams", "limits")
    for person in people:
        state = "active" if person.is_active else "deactivated"
        teams = ",".join(t.name for t in person.teams.all()) or "-"
        print(f"{person.username:16} {roles.assigned_role(person):8} {state:12} teams: {teams}")


def cmd_users_role(args) -> None:
    person = find_user(args.name)
    _run(lambda: _services().set_role(user=person, role=args.role))
    print(f"{person.username} is now {args.role}.")


def cmd_users_limits(args) -> None:
    person = find_user(args.name)
    _run(lambda: _services().set_user_limits(user=person, rpm=args.rpm, tokens_per_day=args.tokens_per_day,
                                             concurrency=args.concurrency))
    print(f"Limits of {person.username}: {args.rpm or 'no limit'} rpm, {args.tokens_per_day or 'no limit'} "
          f"tokens/day, {args.concurrency or 'no limit'} at once.")


def cmd_users_deactivate(args) -> None:
    person = find_user(args.name)
    _run(lambda: _services().deactivate_user(user=person))
    print(f"{person.username} is deactivated: signed out everywhere, keys stopped.")


def cmd_users_reactivate(args) -> None:
    person = find_user(args.name)
    _run(lambda: _services().reactivate_user(user=person))
    print(f"{person.username} is active again.")


def _team(name: str):
    from console.models import Team

    team = Team.objects.filter(name=name).first()
    if team is None:
        raise CommandError(f"no team named {name!r}")
    return team


def cmd_teams_create(args) -> None:
    members = [find_user(n) for n in (args.members or "").split(",") if n.strip()]
    team = _run(lambda: _services().create_team(name=args.name, members=members))
    print(f"Created team {team.name} ({len(members)} members).")


def cmd_teams_add(args) -> None:
    team, person = _team(args.name), find_user(args.user)
    _run(lambda: _services().add_team_member(team=team, user=person))
    print(f"Added {person.username} to {team.name}.")


def cmd_teams_remove(args) -> None:
    team, person = _team(args.name), find_user(args.user)
    _run(lambda: _services().remove_team_member(team=team, user=person))
    print(f"Removed {person.username} from {team.name}.")


def cmd_teams_list(args) -> None:
    from console.models import Team

    for team in Team.objects.prefetch_related("members"):
        print(f"{team.name:20} {', '.join(u.username for u in team.members.all()) or '-'}")


def limit_arguments(parser) -> None:
    parser.add_argument("--rpm", type=int, help="requests per minute")
    parser.add_argument("--tokens-per-day", type=int, help="tokens (prompt + completion) per UTC day")
    parser.add_argument("--concurrency", type=int, help="requests at once")


ROLES = ("admin", "member", "auditor")  # console.roles.ROLES (read before Django is set up)
MEMBER = "member"


def register(sub) -> None:
    users = sub.add_parser("users", help="people and roles").add_subparsers(dest="users_command", required=True)
    create = users.add_parser("create", help="create a user (the generated password is printed on the last line)")
    create.add_argument("name")
    create.add_argument("--role", choices=ROLES, default=MEMBER)
    create.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    create.set_defaults(func=cmd_users_create)
    users.add_parser("list", help="list users, roles and teams").set_defaults(func=cmd_users_list)
    role = users.add_parser("role", help="set a user's role")
    role.add_argument("name")
    role.add_argument("role", choices=ROLES)
    role.set_defaults(func=cmd_users_role)
    limits = users.add_parser("limits", help="a user's limits (playground, CLI; defaults of new keys)")
    limits.add_argument("name")
    limit_arguments(limits)
    limits.set_defaults(func=cmd_users_limits)
    for name, func, text in (("deactivate", cmd_users_deactivate, "sign a user out and stop their keys"),
                             ("reactivate", cmd_users_reactivate, "let a deactivated user back in")):
        p = users.add_parser(name, help=text)
        p.add_argument("name")
        p.set_defaults(func=func)

    teams = sub.add_parser("teams", help="teams (who shares playground rooms)").add_subparsers(
        dest="teams_command", required=True)
    create = teams.add_parser("create", help="create a team")
    create.add_argument("name")
    create.add_argument("--members", help="comma-separated user names")
    create.set_defaults(func=cmd_teams_create)
    for name, func, text in (("add", cmd_teams_add, "add a user to a team"),
                             ("remove", cmd_teams_remove, "remove a user from a team")):
        p = teams.add_parser(name, help=text)
        p.add_argument("name")
        p.add_argument("user")
        p.set_defaults(func=func)
    teams.add_parser("list", help="list teams and members").set_defaults(func=cmd_teams_list)
