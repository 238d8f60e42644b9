"""The console's model registry pages: versions, rollback, checks, removal, load configuration,
pulls with progress, and the catalog."""

import hashlib
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from registry import blobstore, services
from registry.models import Check, Model, ModelVersion, Pull
from tests.registry.ggufs import write_tiny_gguf

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def home(settings, tmp_path):
    """A private LANTHORN_HOME: removal collects unreferenced blobs, so never the real one."""
    settings.LANTHORN_HOME = tmp_path
    return tmp_path


def digest_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def make_model(name="tiny", *, versions=2, active=2, user=None, blobs=True, **fields) -> Model:
    """A model with `versions` versions (v1..vN), `active` the active one; `blobs`: their files exist."""
    model = Model.objects.create(name=name, description="A tiny model for tests", **fields)
    for number in range(1, versions + 1):
        digest = digest_of(f"{name}:{number}")
        version = ModelVersion.objects.create(
            model=model, number=number, digest=digest, size=number * 3_000_000,
            source=f"hf://org/repo/{name}-v{number}.gguf", pulled_by=user, architecture="llama",
            quantization="Q4_K_M", parameter_count=268_000_000, context_length=8192,
            chat_template="{{ messages }}" if number == 2 else "")
        if blobs:
            blobstore.blob_path(digest).write_bytes(b"not really a model")
        if number == active:
            model.active_version = version
    model.save()
    return model


def version(model, number) -> ModelVersion:
    return model.versions.get(number=number)


def page(client, **extra) -> str:
    return client.get(reverse("models"), **extra).content.decode()


# Who sees what.

def test_anonymous_users_go_to_login(client):
    for url in (reverse("models"), reverse("model-config-export", args=["tiny"])):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_anonymous_cannot_activate(client, member):
    model = make_model(user=member)
    response = client.post(reverse("version-activate", args=["tiny", 1]))
    assert response["Location"].startswith(reverse("login"))
    model.refresh_from_db()
    assert model.active_version.number == 2


def test_it_shows_versions_of_a_model(client, member, admin):
    make_model(user=admin)
    client.force_login(member)
    content = page(client)
    assert "<h3>tiny</h3>" in content
    assert "A tiny model for tests" in content
    assert "v1" in content and "v2" in content
    digest = digest_of("tiny:2")
    assert f">{digest[:12]}</code>" in content and f">{digest}<" not in content
    assert "hf://org/repo/tiny-v1.gguf" in content
    assert "<td>alice</td>" in content  # pulled by
    assert "3 MB" in content and "6 MB" in content
    # The active version's facts.
    facts = content.split('<dl class="facts">')[1].split("</dl>")[0]
    assert "<dd>v2</dd>" in facts
    assert "Q4_K_M" in facts and "llama" in facts and "268M" in facts and "8192" in facts
    assert "<dt>Chat template</dt><dd>yes</dd>" in facts


def test_it_shows_the_last_check_of_each_version(client, member):
    from django.utils import timezone

    model = make_model()
    ModelVersion.objects.filter(model=model, number=1).update(
        checked_at=timezone.now(), check_problem="sha256 is 00ff, expected abcd")
    ModelVersion.objects.filter(model=model, number=2).update(checked_at=timezone.now())
    client.force_login(member)
    content = page(client)
    row1 = content.split('id="version-tiny-1"')[1].split("</tr>")[0]
    row2 = content.split('id="version-tiny-2"')[1].split("</tr>")[0]
    assert "sha256 is 00ff, expected abcd" in row1
    assert '<span class="ok">OK</span>' in row2


def test_member_sees_models_read_only(client, member):
    make_model()
    client.force_login(member)
    content = page(client)
    assert "tiny" in content
    assert "Activate</button>" not in content
    assert "Remove</button>" not in content
    assert "Save configuration" not in content
    assert 'action="/models/pull/"' not in content
    assert "<fieldset class=\"config-grid\" disabled>" in content
    assert reverse("model-config-export", args=["tiny"]) in content  # reading is fine


def test_admin_sees_the_actions(client, admin):
    make_model()
    client.force_login(admin)
    content = page(client)
    row1 = content.split('id="version-tiny-1"')[1].split("</tr>")[0]
    row2 = content.split('id="version-tiny-2"')[1].split("</tr>")[0]
    assert "Activate</button>" in row1 and "Roll back to v1" in row1
    assert "Activate</button>" not in row2  # already active
    assert "Check</button>" in row1 and "Remove</button>" in row1
    assert "hx-confirm=" in row1
    assert "Save configuration" in content
    assert 'name="csrfmiddlewaretoken"' in content


def test_dashboard_links_to_the_models_page(client, member):
    client.force_login(member)
    content = client.get(reverse("dashboard")).content.decode()
    assert f'href="{reverse("models")}"' in content


def test_it_says_when_there_are_no_models(client, admin):
    client.force_login(admin)
    assert "No models yet. Pull one below." in page(client)


# Versions: activate (rollback), check, remove.

def test_member_cannot_activate_a_version(client, member):
    model = make_model()
    client.force_login(member)
    response = client.post(reverse("version-activate", args=["tiny", 1]), **HTMX)
    assert response.status_code == 403
    model.refresh_from_db()
    assert model.active_version.number == 2


def test_member_cannot_check_or_remove_a_version(client, member):
    make_model()
    client.force_login(member)
    assert client.post(reverse("version-check", args=["tiny", 1])).status_code == 403
    assert client.post(reverse("version-remove", args=["tiny", 1])).status_code == 403
    assert ModelVersion.objects.filter(model__name="tiny", number=1, checked_at=None).exists()


def test_it_rolls_back_to_an_older_version(client, admin):
    model = make_model()
    client.force_login(admin)
    content = client.post(reverse("version-activate", args=["tiny", 1]), **HTMX).content.decode()
    model.refresh_from_db()
    assert model.active_version.number == 1
    assert "tiny:1 is now the active version." in content
    assert content.lstrip().startswith('<article class="model" id="model-tiny">')
    assert "<html" not in content
    assert "<dd>v1</dd>" in content


def test_plain_activate_returns_the_whole_page(client, admin):
    model = make_model()
    client.force_login(admin)
    content = client.post(reverse("version-activate", args=["tiny", 1])).content.decode()
    model.refresh_from_db()
    assert model.active_version.number == 1
    assert "<html" in content
    assert "tiny:1 is now the active version." in content


def test_it_shows_why_a_version_cannot_be_activated(client, admin):
    model = make_model(blobs=False)
    client.force_login(admin)
    response = client.post(reverse("version-activate", args=["tiny", 1]), **HTMX)
    content = response.content.decode()
    assert response.status_code == 200  # htmx swaps it in
    assert "the file of tiny:1 is missing from the blob store" in content
    assert 'class="message error"' in content
    model.refresh_from_db()
    assert model.active_version.number == 2


def test_unknown_version_is_a_404(client, admin):
    make_model()
    client.force_login(admin)
    assert client.post(reverse("version-activate", args=["tiny", 9])).status_code == 404
    assert client.post(reverse("version-remove", args=["nope", 1])).status_code == 404


def test_it_checks_a_good_version(client, admin, home):
    path = write_tiny_gguf(home / "tiny.gguf", size_mb=0.1)
    digest = blobstore.sha256_file(path)
    path.rename(blobstore.blob_path(digest))
    model = Model.objects.create(name="good")
    good = ModelVersion.objects.create(model=model, number=1, digest=digest, source="/tmp/tiny.gguf",
                                       size=blobstore.blob_path(digest).stat().st_size)
    client.force_login(admin)
    content = client.post(reverse("version-check", args=["good", 1]), **HTMX).content.decode()
    assert "check good:1" in content and "queued" in content
    check = Check.objects.get()
    services.run_check(check_id=check.pk)  # as the jobs worker does
    content = client.get(reverse("job-detail", args=["check", check.pk]), **HTMX).content.decode()
    good.refresh_from_db()
    assert good.checked_at is not None and good.check_problem == ""
    assert "good:1: check OK" in content


def test_it_shows_the_problems_a_check_finds(client, admin):
    make_model()
    client.force_login(admin)
    client.post(reverse("version-check", args=["tiny", 1]), **HTMX)
    check = Check.objects.get()
    services.run_check(check_id=check.pk)  # as the jobs worker does
    content = client.get(reverse("job-detail", args=["check", check.pk]), **HTMX).content.decode()
    checked = ModelVersion.objects.get(model__name="tiny", number=1)
    assert checked.checked_at is not None and checked.check_problem
    assert "tiny:1 failed its check:" in content
    assert "the file is 18 bytes, the version recorded 3,000,000" in content
    assert f"expected {checked.digest}" in content


def test_it_refuses_to_remove_the_active_version(client, admin):
    make_model()
    client.force_login(admin)
    response = client.post(reverse("version-remove", args=["tiny", 2]), **HTMX)
    content = response.content.decode()
    assert response.status_code == 200
    assert "tiny:2 is the active version and is serving" in content
    assert ModelVersion.objects.filter(model__name="tiny", number=2).exists()


def test_it_removes_an_older_version_and_its_file(client, admin):
    make_model()
    client.force_login(admin)
    content = client.post(reverse("version-remove", args=["tiny", 1]), **HTMX).content.decode()
    assert not ModelVersion.objects.filter(model__name="tiny", number=1).exists()
    assert not blobstore.blob_path(digest_of("tiny:1")).exists()
    assert blobstore.blob_path(digest_of("tiny:2")).exists()
    assert "Removed tiny:1: 1 file deleted" in content
    assert 'id="version-tiny-1"' not in content


def test_actions_need_a_post(client, admin):
    make_model()
    client.force_login(admin)
    assert client.get(reverse("version-remove", args=["tiny", 1])).status_code == 405
    assert ModelVersion.objects.filter(model__name="tiny", number=1).exists()


# Load configuration.

CONFIG = {"n_ctx": "2048", "n_threads": "", "n_gpu_layers": "0", "gpu_id": "0",
          "temperature": "0.5", "top_p": "0.9", "top_k": "20", "max_tokens": "128"}


def test_it_saves_config(client, admin):
    make_model()
    client.force_login(admin)
    content = client.post(reverse("model-config", args=["tiny"]), {**CONFIG, "n_threads": "4"},
                          **HTMX).content.decode()
    model = Model.objects.get(name="tiny")
    assert (model.n_ctx, model.n_threads, model.temperature, model.top_p, model.max_tokens) == (2048, 4, 0.5, 0.9, 128)
    assert "Configuration saved." in content
    assert content.lstrip().startswith('<div class="config-body" id="config-tiny">')


def test_blank_threads_means_all_cores(client, admin):
    make_model(n_threads=8)
    client.force_login(admin)
    client.post(reverse("model-config", args=["tiny"]), CONFIG, **HTMX)
    assert Model.objects.get(name="tiny").n_threads is None


def test_it_validates_config(client, admin):
    make_model()
    client.force_login(admin)
    content = client.post(reverse("model-config", args=["tiny"]), {**CONFIG, "n_ctx": "65536"},
                          **HTMX).content.decode()
    assert "n_ctx: 65536 is more than the 8192 tokens this model was trained for." in content
    assert "Configuration saved." not in content
    assert Model.objects.get(name="tiny").n_ctx == 4096
    # The message sits at the field, and the form keeps what was typed.
    field = content.split('id="id_tiny_n_ctx"')[1].split("</div>")[0]
    assert "trained for" in field
    assert 'value="65536"' in content


def test_it_refuses_a_config_that_is_not_a_number(client, admin):
    make_model()
    client.force_login(admin)
    content = client.post(reverse("model-config", args=["tiny"]), {**CONFIG, "temperature": "hot"},
                          **HTMX).content.decode()
    assert "Enter a number." in content
    assert Model.objects.get(name="tiny").temperature == 0.8


def test_plain_config_error_shows_the_whole_page_with_the_form_open(client, admin):
    make_model()
    client.force_login(admin)
    content = client.post(reverse("model-config", args=["tiny"]), {**CONFIG, "top_p": "0"}).content.decode()
    assert "<html" in content
    assert "top_p: must be more than 0." in content
    assert '<details class="config" open>' in content


def test_member_cannot_change_config(client, member):
    make_model()
    client.force_login(member)
    assert client.post(reverse("model-config", args=["tiny"]), CONFIG).status_code == 403
    assert Model.objects.get(name="tiny").n_ctx == 4096


def test_it_exports_config_as_json(client, member):
    model = make_model(temperature=0.3)
    client.force_login(member)
    response = client.get(reverse("model-config-export", args=["tiny"]))
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == 'attachment; filename="tiny.json"'
    config = json.loads(response.content)
    assert config["temperature"] == 0.3
    assert config["n_ctx"] == 4096
    assert config["model_path"] == str(version(model, 2).path)


def test_it_imports_config_json(client, admin):
    make_model()
    client.force_login(admin)
    upload = SimpleUploadedFile("tiny.json", json.dumps({"n_ctx": 1024, "max_tokens": 64}).encode(),
                                content_type="application/json")
    content = client.post(reverse("model-config-import", args=["tiny"]), {"file": upload},
                          **HTMX).content.decode()
    model = Model.objects.get(name="tiny")
    assert (model.n_ctx, model.max_tokens) == (1024, 64)
    assert "Configuration imported." in content
    assert 'value="1024"' in content  # the form shows the imported values


def test_an_exported_config_imports_again(client, admin):
    make_model(temperature=0.3)
    client.force_login(admin)
    exported = client.get(reverse("model-config-export", args=["tiny"])).content
    Model.objects.filter(name="tiny").update(temperature=1.5)
    upload = SimpleUploadedFile("tiny.json", exported, content_type="application/json")
    content = client.post(reverse("model-config-import", args=["tiny"]), {"file": upload}, **HTMX).content.decode()
    assert "Configuration imported." in content
    assert Model.objects.get(name="tiny").temperature == 0.3


def test_it_shows_why_an_import_fails(client, admin):
    make_model()
    client.force_login(admin)
    for text, message in [("{not json", "the configuration is not valid JSON"),
                          ('{"n_ctx": 1024, "n_cxt": 2}', "n_cxt: unknown field")]:
        upload = SimpleUploadedFile("bad.json", text.encode(), content_type="application/json")
        content = client.post(reverse("model-config-import", args=["tiny"]), {"file": upload},
                              **HTMX).content.decode()
        assert message in content
    assert Model.objects.get(name="tiny").n_ctx == 4096


# Pulls.

def imports(home):
    """LANTHORN_HOME/imports: where a local-path pull asked through the console may read."""
    (home / "imports").mkdir(exist_ok=True)
    return home / "imports"


def test_it_starts_a_pull_and_shows_progress(client, admin, home):
    client.force_login(admin)
    source = str(imports(home) / "qwen.gguf")
    (imports(home) / "qwen.gguf").write_bytes(b"GGUF")  # a pull of a local file starts only if the file is there
    content = client.post(reverse("pull-create"), {"source": source, "name": "qwen", "sha256": ""},
                          **HTMX).content.decode()
    pull = Pull.objects.get()
    assert (pull.source, pull.name, pull.status, pull.requested_by) == (source, "qwen", Pull.QUEUED, admin)
    assert content.lstrip().startswith('<section id="pulls">')
    assert f'hx-get="{reverse("pull-detail", args=[pull.pk])}" hx-trigger="every 1s"' in content
    assert f'value="{source}"' not in content  # a fresh form

    # A worker reports progress on the row; the polled partial shows it.
    Pull.objects.filter(pk=pull.pk).update(status=Pull.RUNNING, phase="downloading", total_bytes=200_000_000,
                                           done_bytes=50_000_000, rate=5_000_000)
    progress = client.get(reverse("pull-detail", args=[pull.pk]), **HTMX).content.decode()
    assert "<html" not in progress
    assert 'hx-trigger="every 1s"' in progress
    assert '<progress max="200000000" value="50000000">' in progress
    assert "50 / 200 MB" in progress and "(25%)" in progress
    assert "5 MB/s" in progress
    assert "about 30 s left" in progress
    assert "downloading" in progress


def test_a_finished_pull_stops_polling_and_links_to_the_model(client, admin):
    model = make_model(name="qwen")
    pull = Pull.objects.create(source="hf://o/r/qwen.gguf", name="qwen", status=Pull.DONE, phase="success",
                               total_bytes=6_000_000, done_bytes=6_000_000, version=version(model, 2))
    client.force_login(admin)
    response = client.get(reverse("pull-detail", args=[pull.pk]), **HTMX)
    content = response.content.decode()
    assert "hx-trigger" not in content
    assert "Done: qwen v2 is installed (6 MB)." in content
    assert f'href="{reverse("models")}#model-qwen"' in content
    assert "models-changed" in response["HX-Trigger"]  # the model list reloads itself


def test_a_failed_pull_shows_its_error(client, member):
    pull = Pull.objects.create(source="https://example.org/x.gguf", name="x", status=Pull.FAILED, phase="failed",
                               error="HTTP 404 from example.org")
    client.force_login(member)
    content = client.get(reverse("pull-detail", args=[pull.pk]), **HTMX).content.decode()
    assert "Failed: HTTP 404 from example.org" in content
    assert "hx-trigger" not in content


def test_plain_pull_redirects_to_its_progress_page(client, admin, home):
    client.force_login(admin)
    (imports(home) / "a.gguf").write_bytes(b"GGUF")
    response = client.post(reverse("pull-create"), {"source": str(imports(home) / "a.gguf")})
    pull = Pull.objects.get()
    assert response["Location"] == reverse("pull-detail", args=[pull.pk])
    content = client.get(response["Location"]).content.decode()
    assert "<html" in content
    assert "Pull of a" in content
    assert f'hx-get="{reverse("pull-detail", args=[pull.pk])}"' in content


def test_it_shows_why_a_pull_cannot_start(client, admin, home):
    client.force_login(admin)
    content = client.post(reverse("pull-create"), {"source": "ftp://x/y.gguf"}, **HTMX).content.decode()
    assert "unknown source scheme &#x27;ftp://&#x27;" in content
    missing = imports(home) / "missing.gguf"
    content = client.post(reverse("pull-create"), {"source": str(missing)}, **HTMX).content.decode()
    assert f"{missing}: no such file" in content
    (imports(home) / "x.gguf").write_bytes(b"GGUF")
    source = str(imports(home) / "x.gguf")
    content = client.post(reverse("pull-create"), {"source": source, "sha256": "abc"}, **HTMX).content.decode()
    assert "sha256 must be 64 hex digits" in content
    assert f'value="{source}"' in content  # what was typed stays
    assert not Pull.objects.exists()


def test_a_pull_of_a_local_path_outside_the_imports_directory_is_refused_naming_the_setting(client, admin, home):
    client.force_login(admin)
    (home / "elsewhere.gguf").write_bytes(b"GGUF")
    for source in (str(home / "elsewhere.gguf"), "/etc/passwd", f"{imports(home)}/../elsewhere.gguf"):
        content = client.post(reverse("pull-create"), {"source": source}, **HTMX).content.decode()
        assert "is outside the directories local-path pulls may read" in content, source
        assert "LANTHORN_PULL_LOCAL_DIRS" in content
        assert str(imports(home)) in content
    assert not Pull.objects.exists()


def test_member_cannot_pull(client, member):
    client.force_login(member)
    assert client.post(reverse("pull-create"), {"source": "/tmp/x.gguf"}).status_code == 403
    assert not Pull.objects.exists()


def test_it_lists_recent_pulls(client, member, admin):
    for i in range(12):
        Pull.objects.create(source=f"/tmp/m{i}.gguf", name=f"m{i}", status=Pull.DONE, requested_by=admin)
    Pull.objects.create(source="/tmp/broken.gguf", name="broken", status=Pull.FAILED, error="not a GGUF file")
    client.force_login(member)
    content = page(client)
    recent = content.split("<h3>Recent pulls</h3>")[1].split("</table>")[0]
    assert recent.count("<tr>") == 11  # header + the last 10
    assert "not a GGUF file" in recent
    assert "status-failed" in recent and "status-done" in recent


def test_a_stale_pull_is_shown_as_failed(client, member):
    from datetime import timedelta

    from django.utils import timezone

    pull = Pull.objects.create(source="/tmp/x.gguf", name="x", status=Pull.RUNNING)
    Pull.objects.filter(pk=pull.pk).update(updated_at=timezone.now() - timedelta(minutes=5))
    client.force_login(member)
    content = client.get(reverse("pull-detail", args=[pull.pk]), **HTMX).content.decode()
    assert "its worker went away" in content
    assert "hx-trigger" not in content


# The catalog.

def test_it_shows_the_catalog_with_pull_buttons(client, admin):
    make_model(name="gemma3-270m")
    client.force_login(admin)
    content = page(client)
    catalog = content.split('<section id="catalog">')[1].split("</section>")[0]
    gemma = catalog.split("<strong>gemma3-270m</strong>")[1].split("</tr>")[0]
    qwen = catalog.split("<strong>qwen2.5-0.5b-instruct</strong>")[1].split("</tr>")[0]
    assert "installed" in gemma and "Pull</button>" not in gemma
    assert "253 MB" in gemma
    assert '<input type="hidden" name="source" value="qwen2.5-0.5b-instruct">' in qwen
    assert "Pull</button>" in qwen and 'hx-target="#pulls"' in qwen


def test_member_sees_the_catalog_without_pull_buttons(client, member):
    client.force_login(member)
    catalog = page(client).split('<section id="catalog">')[1].split("</section>")[0]
    assert "qwen2.5-0.5b-instruct" in catalog
    assert "Pull</button>" not in catalog


def test_catalog_pull_button_starts_a_pull_of_that_entry(client, admin):
    client.force_login(admin)
    content = client.post(reverse("pull-create"), {"source": "gemma3-270m"}, **HTMX).content.decode()
    pull = Pull.objects.get()
    assert (pull.source, pull.name) == ("gemma3-270m", "gemma3-270m")
    assert f'id="pull-{pull.pk}"' in content


# htmx partials.

def test_htmx_request_gets_a_partial(client, member):
    make_model()
    client.force_login(member)
    response = client.get(reverse("models"), **HTMX)
    content = response.content.decode()
    assert "<html" not in content
    assert content.lstrip().startswith('<section id="models"')
    assert "<h3>tiny</h3>" in content
    assert "HX-Request" in response["Vary"]
    full = page(client)
    assert "<html" in full and '<section id="pulls">' in full and '<section id="catalog">' in full


def test_the_model_list_reloads_when_a_pull_finishes(client, member):
    client.force_login(member)
    content = page(client)
    assert 'hx-trigger="models-changed from:body"' in content
