"""Each act is recorded once, with the right actor, origin and outcome."""

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from console.models import ApiKey
from console.services import create_api_key
from registry import services as registry
from registry.models import Model
from tests.audit.helpers import events_of
from tests.registry.ggufs import write_tiny_gguf

pytestmark = pytest.mark.django_db

BROWSER = "Mozilla/5.0 (audit test)"


def signed_in(client, user):
    client.post(reverse("login"), {"username": user.username, "password": "password"},
                HTTP_USER_AGENT=BROWSER, REMOTE_ADDR="192.0.2.10")
    return client


def test_it_records_a_key_created_in_the_console_once_with_its_actor(client, member):
    signed_in(client, member)

    client.post(reverse("key-create"), {"name": "laptop"}, HTTP_USER_AGENT=BROWSER, REMOTE_ADDR="192.0.2.10")

    [event] = events_of("key.create")
    key = ApiKey.objects.get(name="laptop")
    assert (event.actor_id, event.actor_username, event.target, event.key_prefix) == (
        member.pk, "bob", "bob/laptop", key.prefix)
    assert (event.source_ip, event.user_agent, event.outcome) == ("192.0.2.10", BROWSER, "ok")


def test_it_records_an_admin_revoking_a_members_key_as_the_admins_act(client, admin, member_key):
    signed_in(client, admin)

    client.post(reverse("key-revoke", args=[member_key.key.pk]))

    [event] = events_of("key.revoke")
    assert (event.actor_username, event.target, event.key_prefix) == (
        "alice", "bob/bob's laptop", member_key.key.prefix)


def test_it_records_a_sign_in_with_the_address_and_browser(client, member):
    signed_in(client, member)

    [event] = events_of("auth.login")
    assert (event.actor_username, event.source_ip, event.user_agent) == ("bob", "192.0.2.10", BROWSER)


def test_it_records_a_failed_sign_in_naming_the_account_tried(client, member):
    client.post(reverse("login"), {"username": "bob", "password": "wrong"}, REMOTE_ADDR="192.0.2.66")

    [event] = events_of("auth.login_failed")
    assert (event.actor_id, event.target, event.outcome, event.source_ip) == (None, "bob", "error", "192.0.2.66")


def test_it_records_a_sign_out(client, member):
    signed_in(client, member).post(reverse("logout"))

    [event] = events_of("auth.logout")
    assert event.actor_username == "bob"


def test_it_records_a_config_change_through_the_api_with_before_and_after(client, admin):
    Model.objects.create(name="tiny")
    key = create_api_key(user=admin, name="ops")

    response = client.patch("/api/models/tiny/config", {"temperature": 0.2, "n_ctx": 2048},
                            content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key.raw}")

    assert response.status_code == 200
    [event] = events_of("model.config")
    assert (event.actor_username, event.key_prefix, event.target) == ("alice", key.key.prefix, "tiny")
    assert event.details["after"] == {"temperature": 0.2, "n_ctx": 2048}
    assert event.details["before"]["temperature"] != 0.2


def test_it_records_an_activation_a_rollback_and_a_removal_once_each(home):
    for seed in (1, 2):
        registry.import_file(name="tiny", path=write_tiny_gguf(home / f"t{seed}.gguf", size_mb=0.5, seed=seed))

    registry.activate_version(version=registry.get_version(name="tiny", number=2))
    registry.rollback(name="tiny")
    registry.remove(name="tiny", number=2)

    assert [e.details["previous"] for e in events_of("model.activate")] == ["tiny:2"]
    [rollback] = events_of("model.rollback")
    assert (rollback.target, rollback.details["version"], rollback.details["previous"]) == ("tiny", 1, "tiny:2")
    assert [e.target for e in events_of("model.remove")] == ["tiny:2"]
    assert [e.target for e in events_of("model.pull")] == ["tiny:1", "tiny:2"]


def test_it_records_a_refused_activation_as_an_error(home):
    version = registry.import_file(name="tiny", path=write_tiny_gguf(home / "t.gguf", size_mb=0.5, seed=1))
    version.path.write_bytes(b"broken")
    registry.check_version(version=version)

    with pytest.raises(registry.RegistryError):
        registry.activate_version(version=version)

    [check] = events_of("model.check")
    [activate] = events_of("model.activate")
    assert check.outcome == activate.outcome == "error"
    assert "integrity check" in activate.details["error"]


def test_it_keeps_a_deleted_users_history(client, member):
    signed_in(client, member)
    client.post(reverse("key-create"), {"name": "laptop"})

    user_id = member.pk
    member.delete()

    events = AuditEvent.objects.filter(actor_id=user_id)
    assert sorted(e.action for e in events) == ["auth.login", "key.create"]
    assert {e.actor_username for e in events} == {"bob"}
