import re
from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from console.services import record_usage
from registry.models import Model, ModelVersion

pytestmark = pytest.mark.django_db


def usage(user, key, endpoint="/v1/chat/completions", **fields):
    defaults = dict(request_id="r", model_name="gemma3-270m", prompt_tokens=10, completion_tokens=5,
                    ttft_ms=12.0, latency_ms=80.0, status_code=200, outcome="ok")
    return record_usage(user=user, api_key=key, endpoint=endpoint, **{**defaults, **fields})


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


def figures(client, window="day") -> dict:
    return {m["model"]: m for m in client.get(reverse("dashboard-data")).json()["windows"][window]["models"]}


@pytest.mark.django_db(transaction=True)
def test_it_lists_the_live_workers_with_their_models_and_state(stack, client, member, default_model):
    client.force_login(member)
    workers = client.get(reverse("dashboard-data")).json()["workers"]
    kinds = {w["kind"]: w for w in workers}
    assert set(kinds) == {"inference", "jobs"}
    assert [m["model"] for m in kinds["inference"]["models"]] == ["gemma3-270m"]
    assert kinds["inference"]["state"] in ("idle", "generating", "loading")


def test_it_shows_unknown_workers_when_redis_is_down(client, member, settings):
    from core.redis import redis_client
    from lanthorn.redis_server import free_port

    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    redis_client.cache_clear()
    try:
        client.force_login(member)
        data = client.get(reverse("dashboard-data")).json()
    finally:
        redis_client.cache_clear()
    assert (data["workers"], data["queues"]) == (None, None)


def test_it_shows_the_api_base_url_and_a_curl_example(client, member):
    client.force_login(member)
    content = client.get(reverse("dashboard")).content.decode()
    assert "http://testserver/v1" in content
    assert "curl http://testserver/v1/chat/completions" in content
    assert "gemma3-270m" in content


def test_it_shows_a_member_only_their_own_figures(client, member, outsider, member_key):
    usage(member, member_key.key, model_name="mine")
    usage(outsider, None, model_name="theirs")
    client.force_login(member)
    assert list(figures(client)) == ["mine"]


def test_it_shows_an_auditor_everyones_figures(client, auditor, member, outsider, member_key):
    usage(member, member_key.key, model_name="mine")
    usage(outsider, None, model_name="theirs")
    client.force_login(auditor)
    assert sorted(figures(client)) == ["mine", "theirs"]


def test_it_computes_rates_errors_and_percentiles_per_model(client, admin, member, member_key):
    for latency in range(1, 101):  # 10 ms .. 1000 ms
        usage(member, member_key.key, latency_ms=latency * 10.0, ttft_ms=latency * 1.0, completion_tokens=36,
              outcome="error" if latency <= 5 else "ok")
    usage(member, member_key.key, created_at=timezone.now() - timedelta(days=2))  # outside the day
    client.force_login(admin)
    day = figures(client)["gemma3-270m"]
    assert day["requests"] == 100
    assert day["error_rate"] == 0.05
    assert day["tokens_per_second"] == round(3600 / 86400, 3)
    assert 500 / 1.25 <= day["latency_p50_ms"] <= 500 * 1.25
    assert 950 / 1.25 <= day["latency_p95_ms"] <= 950 * 1.25
    assert 50 / 1.25 <= day["ttft_p50_ms"] <= 50 * 1.25


def test_the_hour_chart_counts_the_requests_of_the_last_hour(client, member, member_key):
    usage(member, member_key.key)
    usage(member, member_key.key, created_at=timezone.now() - timedelta(hours=2))
    client.force_login(member)
    series = client.get(reverse("dashboard-data")).json()["windows"]["hour"]["series"]
    assert len(series["x"]) == 60
    assert sum(series["models"]["gemma3-270m"]["requests_per_minute"]) == 1


def test_a_members_usage_rows_read_through_the_user_time_index(member):
    from console.selectors import visible_usage

    rows = visible_usage(member).filter(created_at__gte=timezone.now() - timedelta(days=1))
    assert "usage_user_time" in rows.explain()


@pytest.mark.skipif(connection.vendor != "sqlite", reason="reads SQLite's query plan (PostgreSQL scans tiny tables)")
def test_the_figures_read_the_rollup_through_its_unique_keys():
    from console.models import UsageMinute, UsageMinuteBucket

    since = timezone.now() - timedelta(days=1)
    plan = UsageMinute.objects.filter(scope="", minute__gte=since).explain()
    assert "USING INDEX" in plan and "scope=? AND minute>?" in plan
    plan = UsageMinuteBucket.objects.filter(scope="", metric="ttft", minute__gte=since).explain()
    assert "USING INDEX" in plan and "scope=? AND metric=? AND minute>?" in plan


def test_a_usage_row_is_added_to_the_rollup_for_everyone_and_for_its_user(member, member_key):
    from console.models import UsageMinute, UsageMinuteBucket

    at = timezone.now().replace(second=0, microsecond=0)  # all three in one minute
    for latency in (80.0, 81.0, 5000.0):
        usage(member, member_key.key, latency_ms=latency, outcome="error" if latency > 1000 else "ok", created_at=at)

    minutes = {m.scope: (m.requests, m.errors, m.completion_tokens) for m in UsageMinute.objects.all()}
    assert minutes == {"": (3, 1, 15), str(member.pk): (3, 1, 15)}
    latency = sorted(UsageMinuteBucket.objects.filter(scope="", metric="latency").values_list("count", flat=True))
    assert latency == [1, 2]


def test_the_dashboard_data_takes_a_bounded_number_of_queries(client, admin, member, member_key,
                                                               django_assert_max_num_queries):
    for i in range(30):
        usage(member, member_key.key, model_name=f"m{i % 5}")
    client.force_login(admin)
    with django_assert_max_num_queries(12):
        client.get(reverse("dashboard-data"))


def test_the_usage_page_shows_a_member_only_their_rows(client, member, outsider, member_key):
    usage(member, member_key.key, endpoint="/v1/completions")
    usage(outsider, None, endpoint="/v1/models")
    client.force_login(member)
    content = client.get(reverse("usage")).content.decode()
    assert "/v1/completions" in content
    assert "/v1/models" not in content


def test_an_auditor_filters_usage_by_user_and_status(client, auditor, member, outsider, member_key):
    usage(member, member_key.key, endpoint="/v1/completions", outcome="error")
    usage(member, member_key.key, endpoint="/v1/embeddings")
    usage(outsider, None, endpoint="/v1/models", outcome="error")
    client.force_login(auditor)
    content = client.get(reverse("usage"), {"user": "bob", "status": "error"}).content.decode()
    assert "/v1/completions" in content
    assert "/v1/embeddings" not in content and "/v1/models" not in content


def test_a_time_range_that_ends_before_it_starts_is_refused_with_a_message(client, member, member_key):
    usage(member, member_key.key)
    client.force_login(member)
    content = client.get(reverse("usage"), {"since": "2026-01-02T00:00", "until": "2026-01-01T00:00"}).content.decode()
    assert "The time range ends before it starts." in content
    assert "No requests match." in content


def test_the_usage_page_is_paginated(client, member, member_key):
    for i in range(55):
        usage(member, member_key.key, request_id=f"r{i}")
    client.force_login(member)
    first = client.get(reverse("usage")).content.decode()
    second = client.get(reverse("usage"), {"page": 2}).content.decode()
    assert len(re.findall(r'href="/usage/\d+/"', first)) == 50 and "page 1 of 2" in first
    assert len(re.findall(r'href="/usage/\d+/"', second)) == 5


def test_a_member_sees_the_detail_of_their_row_but_not_of_anothers(client, member, outsider, member_key):
    mine, theirs = usage(member, member_key.key, request_id="req-mine"), usage(outsider, None)
    client.force_login(member)
    assert "req-mine" in client.get(reverse("usage-detail", args=[mine.pk])).content.decode()
    assert client.get(reverse("usage-detail", args=[theirs.pk])).status_code == 404


@pytest.mark.parametrize("role,status", [("admin", 200), ("member", 403), ("auditor", 403), ("outsider", 403)])
def test_only_an_admin_sees_the_jobs_page(client, request, role, status):
    client.force_login(request.getfixturevalue(role))
    assert client.get(reverse("jobs")).status_code == status


@pytest.mark.django_db(transaction=True)
def test_concurrent_usage_rows_all_count_in_the_rollup(member, member_key):
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection as thread_connection

    from console.models import UsageMinute

    at = timezone.now().replace(second=0, microsecond=0)  # every row in one minute: one rollup row to fight over

    def write(i: int) -> None:
        try:
            for _ in range(5):
                usage(member, member_key.key, created_at=at, latency_ms=10.0 + i)
        finally:
            thread_connection.close()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(8)))

    assert UsageMinute.objects.get(scope="").requests == 40
    assert UsageMinute.objects.get(scope=str(member.pk)).requests == 40
