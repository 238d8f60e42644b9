"""A model added while the worker runs is served at once: the worker starts consuming its queue
(no restart)."""

import pytest

from registry import services
from tests.inference.helpers import chat

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_model_added_while_the_worker_runs_is_served_without_a_restart(api, default_model, stack):
    version = services.import_file(name="gemma-copy", path=default_model.active_version.path)

    r = api.post("/v1/chat/completions", json={**chat("Hi", max_tokens=4), "model": "gemma-copy"}, timeout=30)

    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "gemma-copy"
    assert body["system_fingerprint"] == f"lanthorn-{version.digest[:12]}"
    assert body["usage"]["completion_tokens"] > 0
