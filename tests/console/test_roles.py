"""Each console page and action, allowed or refused as the role says (admin, member, auditor,
outsider: a member in no team), and the navigation showing only what the role may use."""

import pytest
from django.urls import reverse

from console.models import ApiKey
from console.services import create_api_key

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def people(admin, member, auditor, outsider):
    return {"admin": admin, "member": member, "auditor": auditor, "outsider": outsider}


PAGES = {  # page: the roles that may open it
    "dashboard": {"admin", "member", "auditor", "outsider"},
    "models": {"admin", "member", "auditor", "outsider"},
    "playground:index": {"admin", "member", "outsider"},
    "keys": {"admin", "member", "outsider"},
    "users": {"admin"},
    "password": {"admin", "member", "auditor", "outsider"},
}


@pytest.mark.parametrize("role", ["admin", "member", "auditor", "outsider"])
@pytest.mark.parametrize("page", PAGES)
def test_it_opens_a_page_only_for_the_roles_that_may_use_it(client, people, role, page):
    client.force_login(people[role])
    response = client.get(reverse(page))
    assert response.status_code == (200 if role in PAGES[page] else 403)


@pytest.mark.parametrize("page", PAGES)
def test_it_sends_anonymous_people_to_sign_in(client, page):
    response = client.get(reverse(page))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


NAV = {
    "admin": ["Dashboard", "Usage", "Models", "Jobs", "Playground", "API keys", "Users"],
    "member": ["Dashboard", "Usage", "Models", "Playground", "API keys"],
    "auditor": ["Dashboard", "Usage", "Models"],
    "outsider": ["Dashboard", "Usage", "Models", "Playground", "API keys"],
}


@pytest.mark.parametrize("role", NAV)
def test_the_navigation_shows_only_what_the_role_may_use(client, people, role):
    client.force_login(people[role])
    content = client.get(reverse("dashboard")).content.decode()
    nav = content.split('<nav class="nav"')[1].split("</nav>")[0]
    shown = [label for label in ("Dashboard", "Usage", "Models", "Jobs", "Playground", "API keys", "Users")
             if f">{label}</a>" in nav]
    assert shown == NAV[role]


def test_an_auditor_cannot_create_a_key(client, auditor):
    client.force_login(auditor)
    assert client.post(reverse("key-create"), {"name": "sneaky"}).status_code == 403
    assert not ApiKey.objects.exists()


def test_an_auditor_reads_everyones_usage_on_the_usage_page(client, auditor, member, member_key):
    from console.models import UsageRecord

    UsageRecord.objects.create(user=member, api_key=member_key.key, endpoint="/v1/completions",
                               latency_ms=1, status_code=200, outcome="ok", request_id="r1")
    client.force_login(auditor)
    assert "<code>/v1/completions</code>" in client.get(reverse("usage")).content.decode()


def test_a_member_reads_only_their_own_usage(client, member, outsider):
    from console.models import UsageRecord

    UsageRecord.objects.create(user=outsider, endpoint="/v1/completions", latency_ms=1, status_code=200,
                               outcome="ok", request_id="r1")
    client.force_login(member)
    assert "<code>/v1/completions</code>" not in client.get(reverse("usage")).content.decode()


@pytest.mark.parametrize("role, allowed", [("admin", True), ("member", False), ("auditor", False)])
def test_only_an_admin_changes_a_models_configuration(client, people, role, allowed, home):
    from registry import services
    from tests.registry.ggufs import write_tiny_gguf

    services.import_file(name="tiny", path=write_tiny_gguf(home / "tiny.gguf", size_mb=0.5, seed=1))
    client.force_login(people[role])
    response = client.post(reverse("model-config", args=["tiny"]),
                           {"n_ctx": 1024, "n_gpu_layers": 0, "gpu_id": 0, "temperature": 0.5, "top_p": 0.9,
                            "max_tokens": 64})
    assert response.status_code == (200 if allowed else 403)


@pytest.mark.parametrize("role, status", [("admin", 200), ("member", 403), ("auditor", 403)])
def test_only_an_admin_changes_models_through_the_api(client, people, role, status, home):
    from registry import services
    from tests.registry.ggufs import write_tiny_gguf

    services.import_file(name="tiny", path=write_tiny_gguf(home / "tiny.gguf", size_mb=0.5, seed=1))
    client.force_login(people[role])
    response = client.patch("/api/models/tiny/config", {"max_tokens": 64}, content_type="application/json")
    assert response.status_code == status


def test_a_member_sees_and_revokes_only_their_own_keys(client, member, outsider):
    theirs = create_api_key(user=outsider, name="charlie-ci")
    client.force_login(member)
    assert "charlie-ci" not in client.get(reverse("keys")).content.decode()
    assert client.post(reverse("key-revoke", args=[theirs.key.pk])).status_code == 404
    theirs.key.refresh_from_db()
    assert theirs.key.revoked_at is None


def test_an_auditor_in_a_team_cannot_enter_its_room(auditor, member):
    from console.services import create_team
    from playground import selectors, services
    from registry.models import Model

    Model.objects.create(name="tiny")
    team = create_team(name="red", members=[member, auditor])
    room = services.create_conversation(owner=member, title="Room", model_name="tiny", team=team)
    assert selectors.can_enter(user=member, conversation=room)
    assert not selectors.can_enter(user=auditor, conversation=room)
