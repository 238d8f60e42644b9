"""Switching a model's active version while a request streams: the request finishes on the version
it started with; the next request gets the new active version; no restart."""

import json

import pytest

from console.models import UsageRecord
from registry import services
from tests.inference.helpers import chat
from tests.registry.peer import with_fixed_template

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_rollback_while_a_request_streams_applies_to_the_next_request(api, default_model, tmp_path):
    v1 = default_model.active_version
    v2 = services.import_file(name="gemma3-270m", path=with_fixed_template(v1.path, tmp_path / "fixed.gguf"))
    assert v2.number == 2 and v2.is_active

    pieces, fingerprints, rolled_back = [], set(), None
    with api.stream("POST", "/v1/chat/completions",
                    json=chat("Write a long story about a lighthouse.", max_tokens=120, stream=True)) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if not line.startswith("data: {"):
                continue
            event = json.loads(line[len("data: "):])
            fingerprints.add(event["system_fingerprint"])
            pieces.append(event["choices"][0]["delta"].get("content", "") if event["choices"] else "")
            if rolled_back is None and "".join(pieces):
                rolled_back = services.rollback(name="gemma3-270m")  # mid-stream
    assert rolled_back.number == 1
    assert fingerprints == {f"lanthorn-{v2.digest[:12]}"}
    row = UsageRecord.objects.get(endpoint="/v1/chat/completions")
    assert row.outcome == "ok" and row.version_digest == v2.digest
    assert row.completion_tokens > 10 and len("".join(pieces)) > 20

    r = api.post("/v1/chat/completions", json=chat("Hi", max_tokens=4))
    assert r.status_code == 200
    assert r.json()["system_fingerprint"] == f"lanthorn-{v1.digest[:12]}"
