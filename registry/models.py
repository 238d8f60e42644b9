import uuid
from datetime import timedelta

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from registry import blobstore


# `qwen2.5-0.5b-instruct`: letters, digits, dots, dashes and underscores (also a queue name's part).
MODEL_NAME = RegexValidator(r"^[A-Za-z0-9][A-Za-z0-9._-]*\Z",
                            "A model name has letters, digits, dots, dashes and underscores.")


class Model(models.Model):
    """A named model that clients ask for (`"model": "gemma3-270m"`), with its load parameters."""

    name = models.CharField(max_length=100, unique=True, validators=[MODEL_NAME])
    description = models.TextField(blank=True)
    license = models.CharField(max_length=200, blank=True)
    active_version = models.ForeignKey(
        "ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Load parameters: how a worker opens the file.
    n_ctx = models.PositiveIntegerField(default=4096)
    n_threads = models.PositiveIntegerField(null=True, blank=True, help_text="empty: all cores")
    n_gpu_layers = models.IntegerField(default=0)
    gpu_id = models.PositiveIntegerField(default=0)
    slots = models.PositiveIntegerField(default=4, help_text="requests a worker decodes together")
    invariant = models.BooleanField(
        default=True, help_text="greedy answers independent of what runs beside them (weights not repacked)")
    max_workers = models.PositiveIntegerField(
        default=1, help_text="worker processes that serve it (they share the weights through mmap)")
    # The response cache: deterministic requests (temperature 0 or a seed) answered from Redis.
    cache = models.BooleanField(default=True, help_text="answer repeated deterministic requests from the cache")
    cache_ttl = models.PositiveIntegerField(default=3600, help_text="seconds a cached answer is kept")
    # Sampling defaults: what a request gets when it does not say.
    temperature = models.FloatField(default=0.8)
    top_p = models.FloatField(default=0.95)
    # Only the k likeliest tokens are drawn from (0: all). llama.cpp's and Ollama's default; it also
    # spares sorting the whole vocabulary for top_p at every token (Gemma 3 has 262,144 entries:
    # 3.9 ms a token without it, 0.5 ms with it, measured on the 2-core box).
    top_k = models.PositiveIntegerField(default=40)
    max_tokens = models.PositiveIntegerField(default=256)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def queue(self) -> str:
        """The Celery queue that carries this model's requests."""
        return f"model.{self.name}"

    def load_config(self) -> dict:
        """How a worker opens the file (the key of its engine)."""
        return {
            "n_ctx": self.n_ctx,
            "n_threads": self.n_threads,
            "n_gpu_layers": self.n_gpu_layers,
            "gpu_id": self.gpu_id,
            "slots": self.slots,
            "invariant": self.invariant,
        }

    def config(self) -> dict:
        """The model's whole configuration as JSON users know it (`model_path` plus the parameters)."""
        version = self.active_version
        return {
            "model_path": str(version.path) if version else None,
            **{field: getattr(self, field) for field in CONFIG_FIELDS},
        }


CONFIG_FIELDS = ("n_ctx", "n_threads", "n_gpu_layers", "gpu_id", "slots", "invariant", "max_workers",
                 "temperature", "top_p", "top_k", "max_tokens", "cache", "cache_ttl")


class ModelVersion(models.Model):
    """One immutable GGUF file of a model, stored in the blob store by its sha256."""

    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    digest = models.CharField(max_length=64, help_text="sha256 of the GGUF file, hex")
    size = models.BigIntegerField()
    source = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True)
    pulled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    # What the GGUF header says.
    architecture = models.CharField(max_length=100, blank=True)
    parameter_count = models.BigIntegerField(null=True, blank=True)
    quantization = models.CharField(max_length=50, blank=True)
    context_length = models.PositiveIntegerField(null=True, blank=True)
    chat_template = models.TextField(blank=True)
    # The latest integrity check (`lanthorn check`): empty problem = it passed.
    checked_at = models.DateTimeField(null=True, blank=True)
    check_problem = models.TextField(blank=True)

    class Meta:
        ordering = ["model", "number"]
        constraints = [
            models.UniqueConstraint(fields=["model", "number"], name="unique_version_number")
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def path(self):
        return blobstore.blob_path(self.digest)

    @property
    def label(self) -> str:
        return f"{self.model.name}:{self.number}"

    @property
    def is_active(self) -> bool:
        return self.model.active_version_id == self.pk



class Job(models.Model):
    """Background work run as a Celery job on the `jobs` queue (or in the process that asked, when
    no jobs worker runs); its row is its progress, its log and its cancel switch."""

    QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
    STATUSES = [(s, s) for s in (QUEUED, RUNNING, DONE, FAILED, CANCELLED)]
    KIND = ""  # "pull", "check": the Jobs page's name for it

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    status = models.CharField(max_length=10, choices=STATUSES, default=QUEUED)
    phase = models.CharField(max_length=200, blank=True, help_text="what it is doing now, in words")
    total_bytes = models.BigIntegerField(null=True, blank=True)
    done_bytes = models.BigIntegerField(default=0)
    rate = models.FloatField(default=0, help_text="bytes per second lately")
    error = models.TextField(blank=True)
    log = models.TextField(blank=True, help_text="what it did, one timestamped line per step")
    cancel_requested = models.BooleanField(default=False, help_text="the job stops at its next chunk")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                     on_delete=models.SET_NULL, related_name="+")
    worker = models.CharField(max_length=200, blank=True, help_text="the Celery worker running it, if any")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    # A running job whose row has not moved for this long lost its process (a killed worker):
    # a live one writes its progress at least every few seconds, hashing included.
    STALE_AFTER = timedelta(seconds=120)
    # A queued job that no worker took up in this long will not be.
    UNCLAIMED_AFTER = timedelta(minutes=10)

    class Meta:
        abstract = True
        ordering = ["-created_at"]

    @property
    def finished(self) -> bool:
        return self.status in (self.DONE, self.FAILED, self.CANCELLED)

    @property
    def started(self) -> bool:
        return self.status != self.QUEUED

    @property
    def is_stale(self) -> bool:
        quiet = timezone.now() - self.updated_at
        if self.status == self.QUEUED:
            return quiet > self.UNCLAIMED_AFTER
        return self.status == self.RUNNING and quiet > self.STALE_AFTER

    @property
    def fraction(self) -> float | None:
        if not self.total_bytes:
            return None
        return min(1.0, self.done_bytes / self.total_bytes)

    @property
    def eta_seconds(self) -> float | None:
        if self.finished or not self.total_bytes or self.rate <= 0:
            return None
        return max(0.0, (self.total_bytes - self.done_bytes) / self.rate)


class Pull(Job):
    """One pull of a model from a source."""

    KIND = "pull"

    source = models.CharField(max_length=1000)
    name = models.CharField(max_length=100, validators=[MODEL_NAME])
    expected_sha256 = models.CharField(max_length=64, blank=True)
    transferred_bytes = models.BigIntegerField(default=0, help_text="bytes that came over the network")
    version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta(Job.Meta):
        pass

    def __str__(self) -> str:
        return f"pull {self.source} as {self.name}"

    @property
    def title(self) -> str:
        return f"pull {self.name} from {self.source}"


class Check(Job):
    """One integrity check of a version (`lanthorn check`): re-hash the file, validate the GGUF."""

    KIND = "check"

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="checks")
    problems = models.JSONField(default=list, blank=True, help_text="what is wrong; empty: it passed")

    class Meta(Job.Meta):
        pass

    def __str__(self) -> str:
        return f"check {self.version.label}"

    @property
    def title(self) -> str:
        return f"check {self.version.label}"

    @property
    def ok(self) -> bool:
        return self.status == self.DONE and not self.problems
