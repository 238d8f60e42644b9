"""Input and output shapes of the registry's API: load configuration, pulls, rollback."""

from rest_framework import serializers

from core.fields import StrictBooleanField, StrictFloatField, StrictIntegerField
from registry.models import Check, Pull

MAX_CONTEXT = 1 << 20


class StrictFieldsMixin:
    """Refuses fields the serializer does not know (a typo must not pass silently)."""

    def validate(self, data):
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({unknown[0]: f"unknown field; known: {', '.join(self.fields)}."})
        return super().validate(data)


class LoadConfigSerializer(StrictFieldsMixin, serializers.Serializer):
    """A model's load parameters; every field optional, unknown fields refused."""

    n_ctx = StrictIntegerField(min_value=64, max_value=MAX_CONTEXT, required=False)
    n_threads = StrictIntegerField(min_value=1, max_value=512, required=False, allow_null=True)
    n_gpu_layers = StrictIntegerField(min_value=-1, max_value=10_000, required=False)
    gpu_id = StrictIntegerField(min_value=0, max_value=64, required=False)
    slots = StrictIntegerField(min_value=1, max_value=64, required=False)
    invariant = StrictBooleanField(required=False)
    max_workers = StrictIntegerField(min_value=1, max_value=64, required=False)
    cache = StrictBooleanField(required=False)
    cache_ttl = StrictIntegerField(min_value=1, max_value=30 * 86400, required=False)
    temperature = StrictFloatField(min_value=0, max_value=2, required=False)
    top_p = StrictFloatField(min_value=0, max_value=1, required=False)
    top_k = StrictIntegerField(min_value=0, max_value=1_000_000, required=False)
    max_tokens = StrictIntegerField(min_value=1, max_value=MAX_CONTEXT, required=False)

    def validate(self, data):
        data = super().validate(data)
        model = self.context["model"]
        n_ctx = data.get("n_ctx", model.n_ctx)
        trained = model.active_version.context_length if model.active_version else None
        # Only a change is held to the trained length: the saved value (a default above it, or one set
        # before another version became active) must not make an exported configuration fail to import.
        if "n_ctx" in data and n_ctx != model.n_ctx and trained and n_ctx > trained:
            raise serializers.ValidationError(
                {"n_ctx": f"{n_ctx} is more than the {trained} tokens this model was trained for."})
        if data.get("max_tokens", model.max_tokens) > n_ctx:
            raise serializers.ValidationError({"max_tokens": f"must not be more than n_ctx ({n_ctx})."})
        if data.get("top_p") == 0:
            raise serializers.ValidationError({"top_p": "must be more than 0."})
        return data


class PullInputSerializer(StrictFieldsMixin, serializers.Serializer):
    source = serializers.CharField(max_length=1000)
    name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    sha256 = serializers.CharField(max_length=64, required=False, allow_blank=True)
    api_key = serializers.CharField(max_length=200, required=False, allow_blank=True,
                                    help_text="the key a lanthorn:// source needs; not kept in the database")


class PullOutputSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="name")
    version = serializers.SerializerMethodField()
    fraction = serializers.FloatField()
    eta_seconds = serializers.FloatField()

    kind = serializers.CharField(source="KIND")

    class Meta:
        model = Pull
        fields = ["id", "kind", "source", "model", "status", "phase", "total_bytes", "done_bytes",
                  "transferred_bytes", "rate", "eta_seconds", "fraction", "error", "version",
                  "created_at", "finished_at"]

    def get_version(self, pull) -> int | None:
        return pull.version.number if pull.version else None


class CheckOutputSerializer(serializers.ModelSerializer):
    kind = serializers.CharField(source="KIND")
    model = serializers.CharField(source="version.model.name")
    version = serializers.IntegerField(source="version.number")
    ok = serializers.BooleanField()
    fraction = serializers.FloatField()

    class Meta:
        model = Check
        fields = ["id", "kind", "model", "version", "status", "phase", "total_bytes", "done_bytes", "rate",
                  "fraction", "ok", "problems", "error", "created_at", "finished_at"]


class VersionInputSerializer(StrictFieldsMixin, serializers.Serializer):
    version = StrictIntegerField(min_value=1, required=False)
