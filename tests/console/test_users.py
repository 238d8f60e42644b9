"""The Users page (admins), the keys page's limits, password change, and the acts they announce."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from console import roles
from console.models import ApiKey, Team, UserLimits
from console.services import ConsoleError, authenticate_key, create_api_key, create_team, InvalidKey
from core.actions import action_done

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def announced():
    """The actions announced during the test, as (action, actor, target)."""
    seen = []

    def record(sender, action, actor, target, **kwargs):
        seen.append((action, actor.username if actor else None, target))

    action_done.connect(record)
    yield seen
    action_done.disconnect(record)


def secret_of(content: str) -> str:
    return content.split('<code class="secret">')[1].split("</code>")[0]


def test_an_admin_creates_a_user_whose_password_is_shown_once(client, admin, announced):
    client.force_login(admin)
    content = client.post(reverse("user-create"), {"username": "erin", "role": "auditor"}).content.decode()
    password = secret_of(content)
    erin = get_user_model().objects.get(username="erin")
    assert erin.check_password(password) and roles.role_of(erin) == roles.AUDITOR
    assert password not in client.get(reverse("users")).content.decode()
    assert ("user.create", "alice", "erin") in announced
    assert signs_in("erin", password)


def test_it_refuses_a_second_user_of_the_same_name(client, admin, member):
    client.force_login(admin)
    content = client.post(reverse("user-create"), {"username": "BOB", "role": "member"}).content.decode()
    assert "already exists" in content and 'class="secret"' not in content


def test_an_admin_sets_a_role(client, admin, member, announced):
    client.force_login(admin)
    client.post(reverse("user-role", args=[member.pk]), {"role": "auditor"})
    assert roles.role_of(get_user_model().objects.get(pk=member.pk)) == roles.AUDITOR
    assert ("user.role", "alice", "bob") in announced


def signs_in(username: str, password: str) -> bool:
    """Signs in through the login page, as a person would (django-axes needs the request)."""
    response = Client().post(reverse("login"), {"username": username, "password": password})
    return response.status_code == 302 and reverse("login") not in response["Location"]


def test_an_admin_cannot_take_away_their_own_admin_role(client, admin):
    client.force_login(admin)
    response = client.post(reverse("user-role", args=[admin.pk]), {"role": "member"}, follow=True)
    assert "cannot take away your own admin role" in response.content.decode()
    assert roles.is_admin(get_user_model().objects.get(pk=admin.pk))


def test_deactivating_ends_the_persons_sessions(client, admin, member):
    bobs = Client()
    bobs.force_login(member)
    assert bobs.get(reverse("keys")).status_code == 200
    client.force_login(admin)
    client.post(reverse("user-deactivate", args=[member.pk]))
    response = bobs.get(reverse("keys"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert not signs_in("bob", "password")


def test_deactivating_stops_the_persons_keys_at_once(client, admin, member, member_key, announced):
    client.force_login(admin)
    client.post(reverse("user-deactivate", args=[member.pk]))
    with pytest.raises(InvalidKey, match="deactivated"):
        authenticate_key(raw=member_key.raw)
    assert ("user.deactivate", "alice", "bob") in announced


def test_reactivating_lets_the_person_back_in_with_their_role(client, admin, auditor, announced):
    client.force_login(admin)
    client.post(reverse("user-deactivate", args=[auditor.pk]))
    client.post(reverse("user-reactivate", args=[auditor.pk]))
    dana = get_user_model().objects.get(pk=auditor.pk)
    assert dana.is_active and roles.role_of(dana) == roles.AUDITOR
    assert ("user.reactivate", "alice", "dana") in announced


def test_an_admin_cannot_deactivate_themselves(client, admin):
    client.force_login(admin)
    client.post(reverse("user-deactivate", args=[admin.pk]))
    assert get_user_model().objects.get(pk=admin.pk).is_active


def test_an_admin_creates_a_team_and_adds_and_removes_members(client, admin, member, announced):
    client.force_login(admin)
    client.post(reverse("team-create"), {"name": "red"})
    team = Team.objects.get(name="red")
    client.post(reverse("team-add", args=[team.pk]), {"user": member.pk})
    assert list(team.members.all()) == [member]
    client.post(reverse("team-remove", args=[team.pk, member.pk]))
    assert not team.members.exists()
    assert [a for a, _, _ in announced] == ["team.create", "team.add", "team.remove"]


def test_an_admin_sets_a_persons_limits(client, admin, member):
    client.force_login(admin)
    client.post(reverse("user-limits", args=[member.pk]), {"rpm": "5", "tokens_per_day": "", "concurrency": "2"})
    limits = UserLimits.objects.get(user=member)
    assert (limits.rpm, limits.tokens_per_day, limits.concurrency) == (5, None, 2)


@pytest.mark.parametrize("role", ["member", "auditor", "outsider"])
def test_only_an_admin_manages_people(client, role, request, admin):
    person = request.getfixturevalue(role)
    client.force_login(person)
    for url, data in [(reverse("user-create"), {"username": "mallory", "role": "admin"}),
                      (reverse("user-role", args=[person.pk]), {"role": "admin"}),
                      (reverse("user-deactivate", args=[admin.pk]), {}),
                      (reverse("team-create"), {"name": "mine"})]:
        assert client.post(url, data).status_code == 403
    assert not get_user_model().objects.filter(username="mallory").exists()
    assert not roles.is_admin(get_user_model().objects.get(pk=person.pk))
    assert get_user_model().objects.get(pk=admin.pk).is_active and not Team.objects.exists()


def test_everyone_changes_their_own_password(client, auditor):
    client.force_login(auditor)
    response = client.post(reverse("password"), {"old_password": "password", "new_password1": "a-new-one-42",
                                                 "new_password2": "a-new-one-42"})
    assert response.status_code == 302
    assert get_user_model().objects.get(pk=auditor.pk).check_password("a-new-one-42")


# Keys with limits, on the keys page.

def test_a_member_creates_a_key_with_limits_and_models(client, member, announced):
    from registry.models import Model

    Model.objects.create(name="gemma3-270m")
    client.force_login(member)
    content = client.post(reverse("key-create"), {"name": "ci", "rpm": "10", "tokens_per_day": "1000",
                                                  "concurrency": "2", "models": ["gemma3-270m"],
                                                  "expires_in_days": "30"}).content.decode()
    key = ApiKey.objects.get(name="ci")
    assert (key.rpm, key.tokens_per_day, key.concurrency, key.allowed_models) == (10, 1000, 2, ["gemma3-270m"])
    assert key.expires_at is not None and secret_of(content).startswith("lt-")
    assert ("key.create", "bob", "bob/ci") in announced


def test_a_member_cannot_loosen_their_limits_through_a_key(client, member):
    UserLimits.objects.create(user=member, rpm=5)
    client.force_login(member)
    content = client.post(reverse("key-create"), {"name": "fast", "rpm": "500"}).content.decode()
    assert "at most 5 requests per minute" in content
    assert not ApiKey.objects.exists()


def test_a_members_new_key_takes_their_limits(client, member):
    UserLimits.objects.create(user=member, rpm=5, tokens_per_day=100)
    client.force_login(member)
    client.post(reverse("key-create"), {"name": "ci"})
    key = ApiKey.objects.get(name="ci")
    assert (key.rpm, key.tokens_per_day, key.concurrency) == (5, 100, None)


def test_a_member_cannot_create_a_key_for_someone_else(client, member, outsider):
    client.force_login(member)
    client.post(reverse("key-create"), {"name": "theirs", "owner": outsider.pk})
    assert ApiKey.objects.get(name="theirs").user == member


def test_an_admin_creates_a_key_for_someone_else(client, admin, member):
    client.force_login(admin)
    client.post(reverse("key-create"), {"name": "for-bob", "owner": member.pk, "rpm": "1000"})
    key = ApiKey.objects.get(name="for-bob")
    assert key.user == member and key.rpm == 1000


def test_an_admin_gives_an_auditor_a_key_for_the_audit_api(admin, auditor):
    key = create_api_key(user=auditor, name="exports", actor=admin).key
    assert key.user == auditor  # the inference doors refuse it (tests/inference/test_limits.py)


def test_a_deactivated_person_cannot_own_a_key(admin, member):
    member.is_active = False
    member.save()
    with pytest.raises(ConsoleError, match="deactivated"):
        create_api_key(user=member, name="x", actor=admin)


def test_revoking_a_key_is_announced(client, member, member_key, announced):
    client.force_login(member)
    client.post(reverse("key-revoke", args=[member_key.key.pk]))
    assert ("key.revoke", "bob", "bob/bob's laptop") in announced


# CSRF: every form added here refuses a post without the token.

def forms(admin, member, team):
    return {
        "key-create": (reverse("key-create"), {"name": "x"}),
        "key-revoke": (None, {}),
        "user-create": (reverse("user-create"), {"username": "mallory", "role": "admin"}),
        "user-role": (reverse("user-role", args=[member.pk]), {"role": "admin"}),
        "user-limits": (reverse("user-limits", args=[member.pk]), {"rpm": "1"}),
        "user-deactivate": (reverse("user-deactivate", args=[member.pk]), {}),
        "user-reactivate": (reverse("user-reactivate", args=[member.pk]), {}),
        "team-create": (reverse("team-create"), {"name": "blue"}),
        "team-add": (reverse("team-add", args=[team.pk]), {"user": member.pk}),
        "team-remove": (reverse("team-remove", args=[team.pk, member.pk]), {}),
        "password": (reverse("password"), {"old_password": "password", "new_password1": "x-new-pass-1",
                                           "new_password2": "x-new-pass-1"}),
    }


@pytest.mark.parametrize("form", ["key-create", "key-revoke", "user-create", "user-role", "user-limits",
                                  "user-deactivate", "user-reactivate", "team-create", "team-add",
                                  "team-remove", "password"])
def test_a_form_without_its_csrf_token_is_refused(admin, member, member_key, form):
    team = create_team(name="red", members=[member])
    url, data = forms(admin, member, team)[form]
    url = url or reverse("key-revoke", args=[member_key.key.pk])
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)
    assert client.post(url, data).status_code == 403
    member.refresh_from_db()
    admin.refresh_from_db()
    assert member.is_active and not roles.is_admin(member) and admin.check_password("password")
    assert not UserLimits.objects.exists() and list(team.members.all()) == [member]
    assert ApiKey.objects.get().revoked_at is None and Team.objects.count() == 1

