from django.conf import settings
from django.db import models

from registry import blobstore


class Model(models.Model):
    """A named model that clients ask for (`"model": "gemma3-270m"`), with its load parameters."""

    name = models.SlugField(max_length=100, unique=True)
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
    # Sampling defaults: what a request gets when it does not say.
    temperature = models.FloatField(default=0.8)
    top_p = models.FloatField(default=0.95)
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
        return {
            "n_ctx": self.n_ctx,
            "n_threads": self.n_threads,
            "n_gpu_layers": self.n_gpu_layers,
            "gpu_id": self.gpu_id,
        }


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

    class Meta:
        ordering = ["model", "number"]
        constraints = [
            models.UniqueConstraint(fields=["model", "number"], name="unique_version_number")
        ]

    def __str__(self) -> str:
        return f"{self.model.name}:{self.number}"

    @property
    def path(self):
        return blobstore.blob_path(self.digest)
