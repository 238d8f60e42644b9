import pytest
from django.urls import reverse

from console.models import ApiKey, hash_key
from console.services import create_api_key

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def test_member_sees_own_keys(client, member, member_key):
    client.force_login(member)
    content = client.get(reverse("keys")).content.decode()
    assert "bob&#x27;s laptop" in content
    assert member_key.key.prefix in content


def test_member_does_not_see_others_keys(client, member, outsider, member_key):
    create_api_key(user=outsider, name="charlie-ci")
    client.force_login(member)
    content = client.get(reverse("keys")).content.decode()
    assert "charlie-ci" not in content


def test_outsider_sees_none_of_bobs_keys(client, outsider, member_key):
    client.force_login(outsider)
    content = client.get(reverse("keys")).content.decode()
    assert "bob&#x27;s laptop" not in content
    assert member_key.key.prefix not in content
    assert "No keys yet" in content


def test_member_has_no_owner_column(client, member, member_key):
    client.force_login(member)
    content = client.get(reverse("keys")).content.decode()
    assert "<th>Owner</th>" not in content


def test_admin_sees_all_keys_with_owner(client, admin, member, outsider, member_key):
    create_api_key(user=outsider, name="charlie-ci")
    client.force_login(admin)
    content = client.get(reverse("keys")).content.decode()
    assert "<th>Owner</th>" in content
    assert "bob&#x27;s laptop" in content
    assert "charlie-ci" in content
    assert "<td>bob</td>" in content and "<td>charlie</td>" in content


def test_it_creates_a_key_and_shows_the_raw_key_once(client, member):
    client.force_login(member)
    response = client.post(reverse("key-create"), {"name": "laptop"}, **HTMX)
    content = response.content.decode()
    key = ApiKey.objects.get(user=member, name="laptop")
    raw = content.split('<code class="secret">')[1].split("</code>")[0]
    assert raw.startswith("lt-")
    assert "it will not be shown again" in content
    assert key.hashed_key == hash_key(raw)
    assert raw not in client.get(reverse("keys")).content.decode()


def test_it_stores_only_the_hash_of_a_new_key(client, member):
    client.force_login(member)
    content = client.post(reverse("key-create"), {"name": "laptop"}, **HTMX).content.decode()
    raw = content.split('<code class="secret">')[1].split("</code>")[0]
    key = ApiKey.objects.get(user=member, name="laptop")
    for field in ApiKey._meta.concrete_fields:
        assert raw != str(getattr(key, field.attname))


def test_created_key_appears_in_the_updated_list(client, member, member_key):
    client.force_login(member)
    content = client.post(reverse("key-create"), {"name": "laptop"}, **HTMX).content.decode()
    assert "<td>laptop</td>" in content
    assert "bob&#x27;s laptop" in content


def test_htmx_create_returns_the_partial(client, member):
    client.force_login(member)
    content = client.post(reverse("key-create"), {"name": "laptop"}, **HTMX).content.decode()
    assert "<html" not in content
    assert content.lstrip().startswith('<section id="keys">')


def test_plain_create_returns_the_full_page_with_the_raw_key(client, member):
    client.force_login(member)
    content = client.post(reverse("key-create"), {"name": "laptop"}).content.decode()
    assert "<html" in content
    assert "it will not be shown again" in content


def test_it_rejects_an_empty_key_name(client, member):
    client.force_login(member)
    content = client.post(reverse("key-create"), {"name": "   "}, **HTMX).content.decode()
    assert "Give the key a name" in content
    assert 'class="secret"' not in content
    assert not ApiKey.objects.exists()


def test_it_rejects_key_creation_by_get(client, member):
    client.force_login(member)
    assert client.get(reverse("key-create")).status_code == 405
    assert not ApiKey.objects.exists()


def test_anonymous_cannot_create_a_key(client):
    response = client.post(reverse("key-create"), {"name": "laptop"})
    assert response["Location"].startswith(reverse("login"))
    assert not ApiKey.objects.exists()


def test_member_can_revoke_own_key(client, member, member_key):
    client.force_login(member)
    content = client.post(reverse("key-revoke", args=[member_key.key.pk]), **HTMX).content.decode()
    member_key.key.refresh_from_db()
    assert not member_key.key.is_active
    assert content.lstrip().startswith(f'<tr id="key-{member_key.key.pk}" class="revoked">')
    assert "<html" not in content
    assert "Revoke</button>" not in content


def test_revoke_rows_ask_for_confirmation(client, member, member_key):
    client.force_login(member)
    content = client.get(reverse("keys")).content.decode()
    assert "hx-confirm=" in content
    assert f'hx-post="{reverse("key-revoke", args=[member_key.key.pk])}"' in content


def test_member_cannot_revoke_anothers_key(client, outsider, member_key):
    client.force_login(outsider)
    response = client.post(reverse("key-revoke", args=[member_key.key.pk]), **HTMX)
    member_key.key.refresh_from_db()
    assert response.status_code == 404
    assert member_key.key.is_active


def test_admin_can_revoke_anyones_key(client, admin, member_key):
    client.force_login(admin)
    content = client.post(reverse("key-revoke", args=[member_key.key.pk]), **HTMX).content.decode()
    member_key.key.refresh_from_db()
    assert not member_key.key.is_active
    assert "<td>bob</td>" in content


def test_plain_revoke_redirects_to_the_keys_page(client, member, member_key):
    client.force_login(member)
    response = client.post(reverse("key-revoke", args=[member_key.key.pk]))
    assert response["Location"] == reverse("keys")
