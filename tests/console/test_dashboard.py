from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from console.models import UsageRecord
from console.services import create_api_key
from registry.models import Model, ModelVersion

pytestmark = pytest.mark.django_db


def usage(user, key, endpoint="/v1/chat/completions", **fields):
    defaults = dict(request_id="r", model_name="gemma3-270m", prompt_tokens=10, completion_tokens=5,
                    ttft_ms=12.0, latency_ms=80.0, status_code=200, outcome="ok")
    return UsageRecord.objects.create(user=user, api_key=key, endpoint=endpoint, **{**defaults, **fields})


def test_it_redirects_anonymous_users_to_login(client):
    response = client.get(reverse("dashboard"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_login_page_shows_the_form(client):
    response = client.get(reverse("login"))
    assert b'name="username"' in response.content
    assert b'name="password"' in response.content


def test_it_logs_in_with_good_credentials(client, member):
    response = client.post(reverse("login"), {"username": "bob", "password": "password"})
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard")


def test_it_rejects_bad_credentials(client, member):
    response = client.post(reverse("login"), {"username": "bob", "password": "wrong"})
    assert b"Please enter a correct username and password" in response.content


def test_logout_is_a_post(client, member):
    client.force_login(member)
    response = client.post(reverse("logout"))
    assert response["Location"] == reverse("login")
    assert client.get(reverse("dashboard")).status_code == 302


def test_dashboard_shows_user_and_logout(client, member):
    client.force_login(member)
    content = client.get(reverse("dashboard")).content.decode()
    assert "Lanthorn" in content
    assert "bob" in content
    assert f'action="{reverse("logout")}"' in content


def test_it_includes_local_htmx(client, member):
    client.force_login(member)
    content = client.get(reverse("dashboard")).content.decode()
    assert "/static/vendor/htmx.min.js" in content
    assert "unpkg" not in content and "cdn" not in content.lower()


def test_it_shows_the_active_version_of_each_model(client, member):
    model = Model.objects.create(name="gemma3-270m")
    version = ModelVersion.objects.create(model=model, number=3, digest="ab" * 32, size=253_000_000,
                                          source="hf://x", architecture="gemma3", quantization="Q8_0")
    model.active_version = version
    model.save()
    client.force_login(member)
    content = client.get(reverse("dashboard")).content.decode()
    assert "gemma3-270m" in content
    assert "v3" in content
    assert "ab" * 6 in content and "ab" * 7 not in content
    assert "253 MB" in content
    assert "Q8_0" in content


@pytest.mark.django_db(transaction=True)
def test_it_counts_the_live_workers(stack, client, member):
    client.force_login(member)
    content = client.get(reverse("dashboard")).content.decode()
    assert "Live workers: 1" in content


def test_it_shows_unknown_workers_when_redis_is_down(client, member, settings):
    from core.redis import redis_client
    from lanthorn.redis_server import free_port

    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    redis_client.cache_clear()
    try:
        client.force_login(member)
        content = client.get(reverse("dashboard")).content.decode()
    finally:
        redis_client.cache_clear()
    assert "Live workers: unknown" in content


def test_it_shows_the_api_base_url_and_a_curl_example(client, member):
    client.force_login(member)
    content = client.get(reverse("dashboard")).content.decode()
    assert "http://testserver/v1" in content
    assert "curl http://testserver/v1/chat/completions" in content
    assert "gemma3-270m" in content


def test_member_sees_only_own_usage(client, member, outsider, member_key):
    outsider_key = create_api_key(user=outsider, name="charlie's box")
    usage(member, member_key.key, endpoint="/v1/completions")
    usage(outsider, outsider_key.key, endpoint="/v1/models")
    client.force_login(member)
    content = client.get(reverse("dashboard")).content.decode()
    assert "/v1/completions" in content
    assert "/v1/models" not in content


def test_outsider_sees_none_of_bobs_usage(client, member, outsider, member_key):
    usage(member, member_key.key, model_name="secret-model")
    client.force_login(outsider)
    content = client.get(reverse("dashboard")).content.decode()
    assert "secret-model" not in content
    assert "bob" not in content
    assert "No requests yet" in content


def test_admin_sees_everyones_usage(client, admin, member, outsider, member_key):
    usage(member, member_key.key, endpoint="/v1/completions")
    usage(outsider, None, endpoint="/v1/models")
    client.force_login(admin)
    content = client.get(reverse("dashboard")).content.decode()
    assert "/v1/completions" in content
    assert "/v1/models" in content


def test_usage_totals_count_only_the_last_24_hours(client, member, member_key):
    usage(member, member_key.key, prompt_tokens=10, completion_tokens=5)
    usage(member, member_key.key, prompt_tokens=1, completion_tokens=1)
    usage(member, member_key.key, prompt_tokens=1000, completion_tokens=1000,
          created_at=timezone.now() - timedelta(days=2))
    client.force_login(member)
    content = client.get(reverse("dashboard")).content.decode()
    assert "<strong>2</strong> requests, <strong>17</strong> tokens" in content


def test_usage_table_shows_at_most_50_rows(client, member, member_key):
    for i in range(55):
        usage(member, member_key.key, request_id=f"r{i}")
    client.force_login(member)
    content = client.get(reverse("dashboard")).content.decode()
    section = content.split('id="usage"')[1].split("</section>")[0]
    assert section.count("<tr>") == 51  # header + 50 rows
