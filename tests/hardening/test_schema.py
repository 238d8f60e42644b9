"""The OpenAPI 3 schema of the whole HTTP API, its browsable page from vendored assets, and a
bounded schemathesis run against the live stack with a valid key: no 5xx, no answer that breaks
the schema."""

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_schema_describes_the_completion_registry_and_model_endpoints(stack):
    r = httpx.get(stack.url + "/api/schema/?format=json", timeout=30)
    assert r.status_code == 200
    schema = r.json()
    assert schema["openapi"].startswith("3.")
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/models", "/api/models", "/api/pulls",
                 "/registry/v1/models/{name}/manifest", "/registry/v1/blobs/{digest}"):
        assert path in schema["paths"], path
    post = schema["paths"]["/v1/chat/completions"]["post"]
    assert set(post["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    assert post["responses"]["401"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_the_docs_page_loads_only_vendored_assets(stack):
    page = httpx.get(stack.url + "/api/docs/", timeout=30).text
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in page
    assert "cdn" not in page.lower() and "https://" not in page
    for asset in ("swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css"):
        assert httpx.get(f"{stack.url}/static/vendor/swagger-ui/{asset}", timeout=30).status_code == 200


def test_schemathesis_finds_no_server_error_and_no_answer_outside_the_schema(stack, default_model, member_key, tmp_path):
    """As a member (not an admin: the run must not change the registry), 10 examples per operation."""
    cli = Path(sys.executable).parent / "schemathesis"
    done = subprocess.run(
        [str(cli), "run", f"{stack.url}/api/schema/?format=json", "--header", f"Authorization: Bearer {member_key.raw}",
         "--checks", "not_a_server_error,response_schema_conformance,status_code_conformance,"
                     "content_type_conformance",
         "--max-examples", "10", "--phases", "fuzzing", "--generation-deterministic", "--workers", "1",
         "--request-timeout", "60", "--no-color"],
        capture_output=True, text=True, timeout=540, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]


@pytest.mark.parametrize("path", ["/api/pulls/not-a-uuid", "/api/models/x/versions/-1", "/v1/nothing"])
def test_an_unknown_api_path_answers_an_openai_error(stack, member_key, path):
    r = httpx.get(stack.url + path, headers={"Authorization": f"Bearer {member_key.raw}"}, timeout=30)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
