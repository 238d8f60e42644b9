"""Strict DRF fields (no silent type conversion) and the first error of a serializer, for error objects."""

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
