"""Safe defaults: production settings pass Django's deployment checks; the admin site cannot get
around the checks of the registry and the keys; sign-in is rate limited."""

import os
import subprocess
import sys

import pytest
from django.urls import reverse

from console.models import ApiKey, UsageRecord
from console.services import create_api_key, revoke_api_key
from lanthorn import processes
from registry.models import Model, ModelVersion

pytestmark = pytest.mark.django_db


def check_deploy(tmp_path, **env) -> subprocess.CompletedProcess:
    env = {**os.environ, "LANTHORN_HOME": str(tmp_path), **env}
    for name in ("DEBUG", "CSRF_TRUSTED_ORIGINS", "DATABASE_URL"):
        env.pop(name, None)
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                          cwd=processes.BASE_DIR, env=env, capture_output=True, text=True, timeout=120)


def test_production_settings_pass_the_deployment_checks(tmp_path):
    done = check_deploy(tmp_path, LANTHORN_ENV="production", ALLOWED_HOSTS="lanthorn.example.com",
                        SECRET_KEY="k3y-" + "abcdefghij" * 4 + "0123456")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_production_refuses_to_start_without_its_host_names(tmp_path):
    done = check_deploy(tmp_path, LANTHORN_ENV="production", ALLOWED_HOSTS="*")
    assert done.returncode != 0
    assert "ALLOWED_HOSTS" in done.stderr


def test_the_admin_site_cannot_unrevoke_a_key(client, admin, member):
    key = create_api_key(user=member, name="old").key
    revoke_api_key(key=key)
    client.force_login(admin)
    url = reverse("admin:console_apikey_change", args=[key.pk])
    r = client.post(url, {"name": "renamed", "revoked_at_0": "", "revoked_at_1": "", "user": member.pk})
    assert r.status_code == 302
    key = ApiKey.objects.get(pk=key.pk)
    assert key.name == "renamed" and key.revoked_at is not None


def test_the_admin_site_cannot_edit_or_delete_a_usage_row(client, admin):
    row = UsageRecord.objects.create(request_id="r1", endpoint="/v1/completions", latency_ms=1, status_code=200,
                                     outcome="ok")
    client.force_login(admin)
    r = client.post(reverse("admin:console_usagerecord_change", args=[row.pk]), {"status_code": 500})
    assert r.status_code == 403
    r = client.post(reverse("admin:console_usagerecord_delete", args=[row.pk]), {"post": "yes"})
    assert r.status_code == 403
    assert UsageRecord.objects.get(pk=row.pk).status_code == 200


def test_the_admin_site_cannot_set_a_models_active_version(client, admin):
    model = Model.objects.create(name="tiny")
    client.force_login(admin)
    version = ModelVersion.objects.create(model=model, number=1, digest="a" * 64, size=1, source="test")
    r = client.post(reverse("admin:registry_model_change", args=[model.pk]),
                    {"description": "x", "license": "", "n_ctx": 999999, "active_version": version.pk,
                     "versions-TOTAL_FORMS": 1, "versions-INITIAL_FORMS": 1, "versions-MIN_NUM_FORMS": 0,
                     "versions-MAX_NUM_FORMS": 1000, "versions-0-id": version.pk, "versions-0-model": model.pk})
    assert r.status_code == 302
    model.refresh_from_db()
    assert model.n_ctx == 4096 and model.active_version is None


def test_sign_in_is_locked_after_repeated_failures(client, member):
    for _ in range(4):
        r = client.post(reverse("login"), {"username": "bob", "password": "wrong"})
        assert r.status_code == 200
    assert client.post(reverse("login"), {"username": "bob", "password": "wrong"}).status_code == 429
    r = client.post(reverse("login"), {"username": "bob", "password": "password"})
    assert r.status_code == 429
    assert "_auth_user_id" not in client.session
