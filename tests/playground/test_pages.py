"""The playground's pages: the conversation list, a room, and who may open which."""

import pytest
from django.urls import reverse

from console.models import Team
from playground import services
from playground.models import Conversation
from registry.models import Model, ModelVersion

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def model():
    model = Model.objects.create(name="tiny")
    model.active_version = ModelVersion.objects.create(model=model, number=1, digest="a" * 64, size=1,
                                                       source="test")
    model.save()
    return model


@pytest.fixture
def team(member, outsider):
    team = Team.objects.create(name="research")
    team.members.add(member)
    return team


def test_it_creates_a_room_for_a_team_with_its_settings(client, member, team, model):
    client.force_login(member)
    r = client.post(reverse("playground:index"), {
        "title": "", "team": team.pk, "model_name": "tiny", "system_prompt": "Be brief.",
        "temperature": "0.2", "top_p": "0.9", "max_tokens": "64"})
    room = Conversation.objects.get()
    assert r.status_code == 302 and r.url == reverse("playground:room", args=[room.pk])
    assert (room.title, room.team, room.owner, room.model_name) == ("New room", team, member, "tiny")
    assert (room.system_prompt, room.temperature, room.top_p, room.max_tokens) == ("Be brief.", 0.2, 0.9, 64)


def test_it_refuses_bad_settings_with_a_message(client, member, model):
    client.force_login(member)
    r = client.post(reverse("playground:index"), {"model_name": "tiny", "temperature": "5", "top_p": "0.9",
                                                  "max_tokens": "64"})
    assert r.status_code == 400
    assert "less than or equal to 2" in r.content.decode()
    assert not Conversation.objects.exists()


def test_only_models_with_an_active_version_can_be_picked(client, member, model):
    Model.objects.create(name="empty")
    client.force_login(member)
    page = client.get(reverse("playground:index")).content.decode()
    assert '<option value="tiny"' in page and "empty" not in page


def test_the_list_shows_own_conversations_and_the_rooms_of_ones_teams(client, member, outsider, team, model):
    services.create_conversation(owner=member, title="Mine", model_name="tiny")
    services.create_conversation(owner=outsider, title="Theirs", model_name="tiny")
    other = Team.objects.create(name="ops")
    other.members.add(outsider, member)
    services.create_conversation(owner=outsider, title="Ops room", model_name="tiny", team=other)
    client.force_login(member)
    page = client.get(reverse("playground:index")).content.decode()
    assert "Mine" in page and "Ops room" in page and "Theirs" not in page


def test_a_room_of_another_team_is_forbidden(client, member, outsider, team, model):
    room = services.create_conversation(owner=member, team=team, title="Research", model_name="tiny")
    client.force_login(outsider)
    assert client.get(reverse("playground:room", args=[room.pk])).status_code == 403
    client.force_login(member)
    page = client.get(reverse("playground:room", args=[room.pk])).content.decode()
    assert f'data-socket="/ws/playground/rooms/{room.pk}/"' in page
    assert '<label for="message">Message</label>' in page


def test_it_renames_and_deletes_a_conversation(client, member, model):
    room = services.create_conversation(owner=member, title="Draft", model_name="tiny")
    client.force_login(member)
    r = client.post(reverse("playground:rename", args=[room.pk]), {"title": "Final"}, **HTMX)
    assert "Final" in r.content.decode()
    room.refresh_from_db()
    assert room.title == "Final"
    r = client.post(reverse("playground:delete", args=[room.pk]), **HTMX)
    assert r.status_code == 200 and not Conversation.objects.exists()


def test_only_the_owner_deletes_a_team_room(client, member, outsider, team, model):
    team.members.add(outsider)
    room = services.create_conversation(owner=member, team=team, title="Research", model_name="tiny")
    client.force_login(outsider)
    assert client.post(reverse("playground:delete", args=[room.pk])).status_code == 403
    assert Conversation.objects.exists()


def test_settings_are_saved_from_the_room(client, member, model):
    room = services.create_conversation(owner=member, title="Draft", model_name="tiny")
    client.force_login(member)
    r = client.post(reverse("playground:settings", args=[room.pk]), {
        "model_name": "tiny", "system_prompt": "Answer in French.", "temperature": "0", "top_p": "1",
        "max_tokens": "12"}, **HTMX)
    assert "Saved" in r.content.decode()
    room.refresh_from_db()
    assert (room.system_prompt, room.temperature, room.max_tokens) == ("Answer in French.", 0, 12)


def test_the_answer_request_carries_the_history_and_settings(member, model):
    room = services.create_conversation(owner=member, title="Draft", model_name="tiny", system_prompt="Be brief.",
                                        temperature=0.1, top_p=0.5, max_tokens=9)
    services.add_message(conversation_id=room.pk, role="user", content="Hi", author=member)
    services.add_message(conversation_id=room.pk, role="assistant", content="", status="error", error="no worker")
    services.add_message(conversation_id=room.pk, role="user", content="Hi again", author=member)
    body = services.chat_request(conversation_id=room.pk)
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                                {"role": "user", "content": "Hi again"}]
    assert (body["model"], body["temperature"], body["top_p"], body["max_tokens"]) == ("tiny", 0.1, 0.5, 9)
