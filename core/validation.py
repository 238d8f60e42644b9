"""The first error of a serializer, for error objects (the strict fields are in core/fields.py;
this module imports no DRF, which workers do without)."""


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
