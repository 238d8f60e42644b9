"""Input validation for the OpenAI-compatible endpoints.

Types are strict, as OpenAI's are: `"temperature": "0.5"` or `"max_tokens": true`
is a 400 naming the field, not a silent conversion. Sizes are capped (LANTHORN_MAX_MESSAGES,
LANTHORN_MAX_MESSAGE_CHARS, LANTHORN_MAX_STOP_CHARS): a request over a cap is a 400 naming it.
"""

from django.conf import settings
from rest_framework import serializers

from core.fields import StrictBooleanField, StrictCharField, StrictFloatField, StrictIntegerField


def check_length(text: str) -> str:
    if len(text) > settings.LANTHORN_MAX_MESSAGE_CHARS:
        raise serializers.ValidationError(f"Must be at most {settings.LANTHORN_MAX_MESSAGE_CHARS} characters.")
    return text


class StopField(serializers.Field):
    default_error_messages = {"invalid": "Must be a string or a list of at most 4 strings.",
                              "too_long": "Each stop string must be at most {limit} characters."}

    def to_internal_value(self, data):
        if data is None:
            return []
        if isinstance(data, str):
            data = [data]
        if isinstance(data, list) and len(data) <= 4 and all(isinstance(s, str) for s in data):
            if any(len(s) > settings.LANTHORN_MAX_STOP_CHARS for s in data):
                self.fail("too_long", limit=settings.LANTHORN_MAX_STOP_CHARS)
            return data
        self.fail("invalid")


class StreamOptionsSerializer(serializers.Serializer):
    include_usage = StrictBooleanField(required=False, default=False)


class SamplingSerializer(serializers.Serializer):
    model = StrictCharField(max_length=200)
    max_tokens = StrictIntegerField(required=False, allow_null=True, min_value=1)
    temperature = StrictFloatField(required=False, allow_null=True, min_value=0, max_value=2)
    top_p = StrictFloatField(required=False, allow_null=True, min_value=0, max_value=1)
    top_k = StrictIntegerField(required=False, allow_null=True, min_value=0, max_value=1_000_000)  # as llama.cpp's server
    stop = StopField(required=False, default=list)
    seed = StrictIntegerField(required=False, allow_null=True)
    n = StrictIntegerField(required=False, allow_null=True, min_value=1, max_value=1)
    stream = StrictBooleanField(required=False, default=False)
    stream_options = StreamOptionsSerializer(required=False, allow_null=True)
    user = StrictCharField(required=False, allow_blank=True, max_length=256)
    # The context the request needs (Ollama's num_ctx): at most the model's loaded n_ctx.
    num_ctx = StrictIntegerField(required=False, allow_null=True, min_value=1)


class MessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["system", "developer", "user", "assistant"])
    content = serializers.JSONField()

    def validate_content(self, value):
        # A string, or OpenAI's list of content parts of which Lanthorn reads the text ones.
        if isinstance(value, str):
            return check_length(value)
        if isinstance(value, list) and all(isinstance(p, dict) for p in value):
            if any(p.get("type") != "text" or not isinstance(p.get("text"), str) for p in value):
                raise serializers.ValidationError("Only text content parts are supported.")
            return check_length("".join(p["text"] for p in value))
        raise serializers.ValidationError("Must be a string or a list of text parts.")

    def validate_role(self, value):
        return "system" if value == "developer" else value


class ChatCompletionSerializer(SamplingSerializer):
    messages = MessageSerializer(many=True, allow_empty=False)
    max_completion_tokens = StrictIntegerField(required=False, allow_null=True, min_value=1)

    def validate_messages(self, value):
        if len(value) > settings.LANTHORN_MAX_MESSAGES:
            raise serializers.ValidationError(f"Must hold at most {settings.LANTHORN_MAX_MESSAGES} messages.")
        return value


class PromptField(serializers.Field):
    default_error_messages = {"invalid": "Must be a string (or a list holding one string)."}

    def to_internal_value(self, data):
        if isinstance(data, list) and len(data) == 1:
            data = data[0]
        if not isinstance(data, str):
            self.fail("invalid")
        return check_length(data)


class CompletionSerializer(SamplingSerializer):
    prompt = PromptField()
    echo = StrictBooleanField(required=False, default=False)


MAX_EMBEDDING_INPUTS = 2048


class EmbeddingInputField(serializers.Field):
    default_error_messages = {
        "invalid": "Must be a string or a non-empty list of strings.",
        "too_many": f"At most {MAX_EMBEDDING_INPUTS} inputs per request.",
    }

    def to_internal_value(self, data):
        if isinstance(data, str):
            return [data]
        if not isinstance(data, list) or not data or not all(isinstance(s, str) for s in data):
            self.fail("invalid")
        if len(data) > MAX_EMBEDDING_INPUTS:
            self.fail("too_many")
        return data


class EmbeddingSerializer(serializers.Serializer):
    model = StrictCharField(max_length=200)
    input = EmbeddingInputField()
    encoding_format = serializers.ChoiceField(choices=["float", "base64"], required=False, default="float")
    user = StrictCharField(required=False, allow_blank=True)
