"""Every console form is protected against cross-site posts: Django's test client skips the CSRF
check unless asked, so these tests ask (`enforce_csrf_checks=True`)."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from console.models import ApiKey
from console.services import create_api_key

pytestmark = pytest.mark.django_db

FORMS = [
    ("key-create", [], {"name": "k"}),
    ("key-revoke", [1], {}),
    ("logout", [], {}),
    ("pull-create", [], {"source": "gemma3-270m"}),
    ("model-config", ["tiny"], {"n_ctx": "2048"}),
    ("model-config-import", ["tiny"], {}),
    ("version-activate", ["tiny", 1], {}),
    ("version-check", ["tiny", 1], {}),
    ("version-remove", ["tiny", 1], {}),
]


def token_of(html: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


@pytest.mark.parametrize("name, args, data", FORMS)
def test_a_console_form_posted_without_its_csrf_token_is_refused(admin, name, args, data):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)
    r = client.post(reverse(name, args=args), data)
    assert r.status_code == 403
    assert ApiKey.objects.count() == 0


def test_the_sign_in_form_without_its_csrf_token_is_refused(member):
    client = Client(enforce_csrf_checks=True)
    r = client.post(reverse("login"), {"username": "bob", "password": "password"})
    assert r.status_code == 403
    assert "_auth_user_id" not in client.session


def test_the_sign_in_form_carries_its_token_and_works_with_it(member):
    client = Client(enforce_csrf_checks=True)
    token = token_of(client.get(reverse("login")).content.decode())
    r = client.post(reverse("login"), {"username": "bob", "password": "password", "csrfmiddlewaretoken": token})
    assert r.status_code == 302
    assert client.session["_auth_user_id"] == str(member.pk)


def test_the_key_forms_carry_their_token_and_work_with_it(member):
    client = Client(enforce_csrf_checks=True)
    client.force_login(member)
    old = create_api_key(user=member, name="old").key
    token = token_of(client.get(reverse("dashboard")).content.decode())
    assert client.post(reverse("key-create"), {"name": "new", "csrfmiddlewaretoken": token}).status_code == 200
    r = client.post(reverse("key-revoke", args=[old.pk]), {"csrfmiddlewaretoken": token})
    assert r.status_code in (200, 302)
    assert ApiKey.objects.filter(name="new").exists()
    old.refresh_from_db()
    assert old.revoked_at is not None
