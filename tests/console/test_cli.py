"""`lanthorn users`, `lanthorn teams` and `lanthorn keys` (run in this process, on the test database)."""

import io
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from console import roles
from console.models import ApiKey, Team, hash_key
from console.services import authenticate_key
from lanthorn.cli import main

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def lanthorn(capsys):
    """Runs `lanthorn ARGS...`; returns (exit status, stdout, stderr)."""

    def run(*args: str):
        status = main(list(args))
        out, err = capsys.readouterr()
        return status, out, err

    return run


def test_users_create_prints_the_generated_password_on_its_last_line(lanthorn):
    status, out, _ = lanthorn("users", "create", "erin", "--role", "auditor")
    erin = get_user_model().objects.get(username="erin")
    assert status == 0 and erin.check_password(out.strip().splitlines()[-1])
    assert roles.role_of(erin) == roles.AUDITOR


def test_users_create_takes_a_password_from_stdin(lanthorn, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret-enough\n"))
    status, out, _ = lanthorn("users", "create", "erin", "--password-stdin")
    assert status == 0 and "s3cret-enough" not in out
    assert get_user_model().objects.get(username="erin").check_password("s3cret-enough")


def test_users_create_refuses_a_taken_name_in_one_line(lanthorn, member):
    status, _, err = lanthorn("users", "create", "bob")
    assert status == 1 and err.strip() == "lanthorn: A user named 'bob' already exists."


def test_users_deactivate_stops_the_users_keys(lanthorn, member, member_key):
    status, _, _ = lanthorn("users", "deactivate", "bob")
    assert status == 0
    with pytest.raises(Exception, match="deactivated"):
        authenticate_key(raw=member_key.raw)


def test_users_list_shows_roles_and_state(lanthorn, admin, auditor, member):
    lanthorn("users", "deactivate", "bob")
    _, out, _ = lanthorn("users", "list")
    lines = {line.split()[0]: line.split()[1:3] for line in out.splitlines()}
    assert lines == {"alice": ["admin", "active"], "bob": ["member", "deactivated"], "dana": ["auditor", "active"]}


def test_teams_create_and_add(lanthorn, admin, member, outsider):
    assert lanthorn("teams", "create", "red", "--members", "alice,bob")[0] == 0
    assert lanthorn("teams", "add", "red", "charlie")[0] == 0
    assert sorted(u.username for u in Team.objects.get(name="red").members.all()) == ["alice", "bob", "charlie"]


def test_teams_create_names_an_unknown_member(lanthorn, admin):
    status, _, err = lanthorn("teams", "create", "red", "--members", "alice,zed")
    assert status == 1 and err.strip() == "lanthorn: no user named 'zed'"
    assert not Team.objects.exists()


def test_keys_create_with_limits_prints_the_key_on_its_last_line(lanthorn, admin, member, default_model_row):
    status, out, _ = lanthorn("keys", "create", "--name", "ci", "--user", "bob", "--rpm", "10",
                              "--tokens-per-day", "5000", "--concurrency", "2", "--models", "gemma3-270m",
                              "--expires", "30d")
    assert status == 0
    key = ApiKey.objects.get(hashed_key=hash_key(out.strip().splitlines()[-1]))
    assert (key.user, key.rpm, key.tokens_per_day, key.concurrency, key.allowed_models) == \
        (member, 10, 5000, 2, ["gemma3-270m"])
    assert timedelta(days=29) < key.expires_at - timezone.now() <= timedelta(days=30)


@pytest.fixture
def default_model_row():
    from registry.models import Model

    return Model.objects.create(name="gemma3-270m")


def test_keys_create_refuses_an_unknown_model(lanthorn, admin):
    status, _, err = lanthorn("keys", "create", "--name", "ci", "--models", "gpt-4")
    assert status == 1 and err.strip() == "lanthorn: No model named gpt-4."
    assert not ApiKey.objects.exists()


def test_keys_create_refuses_a_bad_expiry(lanthorn, admin):
    status, _, err = lanthorn("keys", "create", "--name", "ci", "--expires", "soon")
    assert status == 1 and "12h, 30d or 2w" in err


def test_keys_create_gives_an_auditor_a_key_for_the_audit_api(lanthorn, auditor):
    status, out, _ = lanthorn("keys", "create", "--name", "exports", "--user", "dana")
    assert status == 0 and ApiKey.objects.get().user == auditor
    assert out.strip().splitlines()[-1].startswith("lt-")


def test_keys_list_shows_the_limits(lanthorn, admin):
    lanthorn("keys", "create", "--name", "ci", "--rpm", "10")
    _, out, _ = lanthorn("keys", "list")
    assert "10 rpm, no tokens/day limit, no concurrent limit, models: all, no expiry" in out


def test_keys_revoke(lanthorn, member_key):
    status, out, _ = lanthorn("keys", "revoke", member_key.key.prefix)
    member_key.key.refresh_from_db()
    assert status == 0 and member_key.key.revoked_at is not None
