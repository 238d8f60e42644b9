"""Input validation for the OpenAI-compatible endpoints.

Types are strict, as OpenAI's are: `"temperature": "0.5"` or `"max_tokens": true`
is a 400 naming the field, not a silent conversion.
"""

from rest_framework import serializers


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictCharField(serializers.CharField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StopField(serializers.Field):
    default_error_messages = {"invalid": "Must be a string or a list of at most 4 strings."}

    def to_internal_value(self, data):
        if data is None:
            return []
        if isinstance(data, str):
            return [data]
        if isinstance(data, list) and len(data) <= 4 and all(isinstance(s, str) for s in data):
            return data
        self.fail("invalid")


class StreamOptionsSerializer(serializers.Serializer):
    include_usage = StrictBooleanField(required=False, default=False)


class SamplingSerializer(serializers.Serializer):
    model = StrictCharField(max_length=200)
    max_tokens = StrictIntegerField(required=False, allow_null=True, min_value=1)
    temperature = StrictFloatField(required=False, allow_null=True, min_value=0, max_value=2)
    top_p = StrictFloatField(required=False, allow_null=True, min_value=0, max_value=1)
    stop = StopField(required=False, default=list)
    seed = StrictIntegerField(required=False, allow_null=True)
    n = StrictIntegerField(required=False, allow_null=True, min_value=1, max_value=1)
    stream = StrictBooleanField(required=False, default=False)
    stream_options = StreamOptionsSerializer(required=False, allow_null=True)
    user = StrictCharField(required=False, allow_blank=True)


class MessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["system", "developer", "user", "assistant"])
    content = serializers.JSONField()

    def validate_content(self, value):
        # A string, or OpenAI's list of content parts of which Lanthorn reads the text ones.
        if isinstance(value, str):
            return value
        if isinstance(value, list) and all(isinstance(p, dict) for p in value):
            if any(p.get("type") != "text" or not isinstance(p.get("text"), str) for p in value):
                raise serializers.ValidationError("Only text content parts are supported.")
            return "".join(p["text"] for p in value)
        raise serializers.ValidationError("Must be a string or a list of text parts.")

    def validate_role(self, value):
        return "system" if value == "developer" else value


class ChatCompletionSerializer(SamplingSerializer):
    messages = MessageSerializer(many=True, allow_empty=False)
    max_completion_tokens = StrictIntegerField(required=False, allow_null=True, min_value=1)


class PromptField(serializers.Field):
    default_error_messages = {"invalid": "Must be a string (or a list holding one string)."}

    def to_internal_value(self, data):
        if isinstance(data, list) and len(data) == 1:
            data = data[0]
        if not isinstance(data, str):
            self.fail("invalid")
        return data


class CompletionSerializer(SamplingSerializer):
    prompt = PromptField()
    echo = StrictBooleanField(required=False, default=False)


def first_error(errors) -> tuple[str | None, str]:
    """The (param, message) of a serializer's first error; nested fields read `messages.0.role`."""
    path = []
    while not isinstance(errors, str):  # DRF's ErrorDetail is a str
        if isinstance(errors, dict):
            key, errors = next(iter(errors.items()))
            if key != "non_field_errors":
                path.append(str(key))
        else:  # a list: of messages, or of one error dict per item (empty for valid items)
            index = next(i for i, e in enumerate(errors) if e)
            if isinstance(errors[index], dict):
                path.append(str(index))
            errors = errors[index]
    param = ".".join(path) or None
    return param, f"{param}: {errors}" if param else str(errors)
