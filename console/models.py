import hashlib

from django.conf import settings
from django.db import models
from django.utils import timezone


def hash_key(raw: str) -> str:
    """API keys are long random strings, so one round of sha256 is enough to keep them safe at rest."""
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiKey(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, help_text="the first characters, to tell keys apart")
    hashed_key = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Limits (console.limits enforces them in Redis); None means no limit.
    allowed_models = models.JSONField(default=list, blank=True, help_text="model names; empty: all models")
    expires_at = models.DateTimeField(null=True, blank=True)
    rpm = models.PositiveIntegerField(null=True, blank=True, help_text="requests per minute")
    tokens_per_day = models.PositiveIntegerField(null=True, blank=True)
    concurrency = models.PositiveIntegerField(null=True, blank=True, help_text="requests at once")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and self.user.is_active and not self.is_expired

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])


class UserLimits(models.Model):
    """A person's limits: they bound what the person does without a key (playground, CLI shell)
    and are the defaults, and the ceiling for members, of the keys they create. None: no limit."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="limits")
    rpm = models.PositiveIntegerField(null=True, blank=True, help_text="requests per minute")
    tokens_per_day = models.PositiveIntegerField(null=True, blank=True)
    concurrency = models.PositiveIntegerField(null=True, blank=True, help_text="requests at once")

    def __str__(self) -> str:
        return f"limits of {self.user}"


class UsageRecord(models.Model):
    """One row per API request, successful or not: the audit trail and the usage figures."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    request_id = models.CharField(max_length=64, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL)
    endpoint = models.CharField(max_length=100)
    model_name = models.CharField(max_length=100, blank=True)
    version_digest = models.CharField(max_length=64, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    ttft_ms = models.FloatField(null=True, blank=True)
    latency_ms = models.FloatField()
    status_code = models.PositiveSmallIntegerField()
    outcome = models.CharField(max_length=20, help_text="ok, error or cancelled")
    error_code = models.CharField(max_length=50, blank=True)
    finish_reason = models.CharField(max_length=20, blank=True)

    class Meta:
        ordering = ["-created_at"]
        # The dashboard and the Usage page read time ranges: everyone's (created_at), one
        # member's, one key's or one model's.
        indexes = [
            models.Index(fields=["user", "created_at"], name="usage_user_time"),
            models.Index(fields=["api_key", "created_at"], name="usage_key_time"),
            models.Index(fields=["model_name", "created_at"], name="usage_model_time"),
        ]


class Team(models.Model):
    """People who share playground rooms (admins manage teams)."""

    name = models.CharField(max_length=100, unique=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="teams", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class UsageMinute(models.Model):
    """The usage rows of one minute and one model, added up as they are written (what the
    dashboard reads, so a month of rows never slows it): once for everyone (`scope` "") and once
    for the row's user (`scope` their id), so a member's figures are their own."""

    minute = models.DateTimeField()
    model_name = models.CharField(max_length=100, blank=True)
    scope = models.CharField(max_length=20, blank=True, help_text='"" everyone, else a user id')
    requests = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "minute", "model_name"], name="usage_minute_key")]


class UsageMinuteBucket(models.Model):
    """How many of a minute's requests to a model had their latency (or TTFT) in one log-spaced
    bucket (console.selectors.EDGES): the dashboard's percentiles are read from these counts."""

    LATENCY, TTFT = "latency", "ttft"

    minute = models.DateTimeField()
    model_name = models.CharField(max_length=100, blank=True)
    scope = models.CharField(max_length=20, blank=True, help_text='"" everyone, else a user id')
    metric = models.CharField(max_length=10, choices=[(LATENCY, LATENCY), (TTFT, TTFT)])
    bucket = models.PositiveSmallIntegerField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "metric", "minute", "model_name", "bucket"],
                                               name="usage_bucket_key")]
