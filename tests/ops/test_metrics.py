"""/metrics: Prometheus text summed over the web and worker processes; only for the metrics
token or the allowed addresses. /healthz: liveness, with no dependency."""

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.inference.helpers import chat

pytestmark = pytest.mark.django_db(transaction=True)


def samples(text: str) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_it_counts_requests_tokens_and_loads_across_processes(api, stack):
    r = api.post("/v1/chat/completions", json=chat("Hi", max_tokens=3))
    assert r.status_code == 200
    usage = r.json()["usage"]

    r = httpx.get(stack.url + "/metrics")  # from 127.0.0.1, allowed by default

    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    found = samples(r.text)
    model = ("model", "gemma3-270m")
    assert found[("lanthorn_requests_total",
                  (("interface", "/v1/chat/completions"), model, ("status", "200")))] >= 1
    assert found[("lanthorn_tokens_total", (("direction", "out"), model))] >= usage["completion_tokens"]
    assert found[("lanthorn_time_to_first_token_seconds_count", (model,))] >= 1
    assert found[("lanthorn_request_duration_seconds_count", (("interface", "/v1/chat/completions"), model))] >= 1
    # Written by the worker process, read by the web process.
    assert found[("lanthorn_model_loads_total", (model,))] >= 1
    assert found[("lanthorn_queue_depth", (model,))] == 0
    assert found[("lanthorn_workers_alive", ())] >= 1


def test_it_refuses_metrics_to_an_address_not_allowed(client, settings):
    settings.LANTHORN_METRICS_TOKEN = "s3cret-metrics"

    r = client.get("/metrics", REMOTE_ADDR="10.1.2.3")

    assert r.status_code == 403
    assert r.json()["error"]["code"] == "forbidden"


def test_it_gives_metrics_to_the_token_from_any_address(client, settings):
    settings.LANTHORN_METRICS_TOKEN = "s3cret-metrics"

    r = client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer s3cret-metrics")

    assert r.status_code == 200
    assert "lanthorn_" in r.content.decode()


def test_it_answers_healthz_without_asking_redis(client, home):
    # `home` points Redis at an address where nothing answers.
    r = client.get("/healthz")

    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_it_is_not_ready_when_redis_is_down_and_names_it(client, home):
    r = client.get("/readyz")

    assert r.status_code == 503
    body = r.json()
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"] == "Redis does not answer"
    assert "Error" not in body["reason"] and "redis:" in body["reason"]


def test_it_does_not_log_not_ready_as_a_server_error(client, home, caplog):
    # `lanthorn run` polls /readyz while the worker loads; each poll's 503 is the expected answer.
    with caplog.at_level("INFO", logger="django.request"):
        r = client.get("/readyz")
        client.get("/no-such-page/")

    assert r.status_code == 503
    logged = [rec.getMessage() for rec in caplog.records if rec.name == "django.request"]
    assert logged == ["Not Found: /no-such-page/"]
