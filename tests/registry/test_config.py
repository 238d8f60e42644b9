"""A model's load configuration: validation in set_config, export as JSON, and import."""

import json

import pytest

from registry import services
from registry.models import CONFIG_FIELDS, Model
from registry.serializers import MAX_CONTEXT
from tests.registry.ggufs import write_tiny_gguf

pytestmark = pytest.mark.django_db



@pytest.fixture
def model(home) -> Model:
    """A model whose active version was trained for 2048 tokens (the tiny GGUF's context_length)."""
    path = write_tiny_gguf(home / "tiny.gguf", size_mb=0.25, seed=1)
    return services.import_file(name="tiny", path=path).model


def saved(model: Model) -> dict:
    return Model.objects.get(pk=model.pk).config()


def test_it_saves_valid_values(model):
    values = {"n_ctx": 1024, "n_threads": 4, "n_gpu_layers": -1, "gpu_id": 1, "temperature": 0.2,
              "top_p": 0.5, "max_tokens": 512}

    services.set_config(model=model, values=values)

    config = saved(model)
    assert {k: config[k] for k in values} == values


def test_it_accepts_the_limits_of_each_range(model):
    values = {"n_ctx": 2048, "temperature": 0, "top_p": 1, "max_tokens": 2048}

    services.set_config(model=model, values=values)

    assert {k: saved(model)[k] for k in values} == values


def test_it_lets_n_threads_go_back_to_all_cores(model):
    services.set_config(model=model, values={"n_threads": 8})

    services.set_config(model=model, values={"n_threads": None})

    assert saved(model)["n_threads"] is None


def test_it_leaves_the_fields_it_was_not_given_alone(model):
    before = saved(model)

    services.set_config(model=model, values={"temperature": 1.5})

    assert saved(model) == {**before, "temperature": 1.5}


@pytest.mark.parametrize("values, param, words", [
    ({"n_ctx": 32}, "n_ctx", "greater than or equal to 64"),
    ({"n_ctx": MAX_CONTEXT + 1}, "n_ctx", f"less than or equal to {MAX_CONTEXT}"),
    ({"n_ctx": 3000}, "n_ctx", "3000 is more than the 2048 tokens this model was trained for"),
    ({"top_p": 0}, "top_p", "must be more than 0"),
    ({"top_p": 1.01}, "top_p", "less than or equal to 1"),
    ({"temperature": -0.1}, "temperature", "greater than or equal to 0"),
    ({"temperature": 2.1}, "temperature", "less than or equal to 2"),
    ({"max_tokens": 0}, "max_tokens", "greater than or equal to 1"),
    ({"n_ctx": 1024, "max_tokens": 1025}, "max_tokens", "must not be more than n_ctx (1024)"),
    ({"flash_attn": True}, "flash_attn", "unknown field"),
    ({"n_ctx": "2048"}, "n_ctx", "valid integer"),
    ({"temperature": "0.5"}, "temperature", "valid number"),
    ({"n_ctx": True}, "n_ctx", "valid integer"),
    ({"n_gpu_layers": -2}, "n_gpu_layers", "greater than or equal to -1"),
    ({"model_path": "/elsewhere/model.gguf"}, "model_path", "cannot be set"),
], ids=["n_ctx-too-small", "n_ctx-too-large", "n_ctx-above-trained", "top_p-zero", "top_p-above-1",
        "temperature-negative", "temperature-above-2", "max_tokens-zero", "max_tokens-above-n_ctx",
        "unknown-key", "n_ctx-string", "temperature-string", "n_ctx-bool", "n_gpu_layers-below-minus-1",
        "model_path-other-file"])
def test_it_refuses_an_invalid_value_naming_the_field_and_saves_nothing(model, values, param, words):
    before = saved(model)

    with pytest.raises(services.RegistryError) as raised:
        services.set_config(model=model, values={"temperature": 0.1, **values})

    assert raised.value.param == param
    assert raised.value.status == 400
    assert words in raised.value.message
    assert saved(model) == before


def test_max_tokens_is_checked_against_the_saved_n_ctx(model):
    services.set_config(model=model, values={"n_ctx": 512, "max_tokens": 256})

    with pytest.raises(services.RegistryError) as raised:
        services.set_config(model=model, values={"max_tokens": 600})

    assert raised.value.param == "max_tokens"
    assert "n_ctx (512)" in raised.value.message


def test_it_accepts_the_active_versions_own_file_as_model_path(model):
    services.set_config(model=model, values={"model_path": str(model.active_version.path), "top_p": 0.7})

    assert saved(model)["top_p"] == 0.7


def test_the_export_has_model_path_and_every_field(model):
    services.set_config(model=model, values={"n_ctx": 1024, "temperature": 0.3})

    config = Model.objects.get(pk=model.pk).config()

    assert list(config) == ["model_path", *CONFIG_FIELDS]
    assert len(CONFIG_FIELDS) == 13
    assert config["model_path"] == str(model.active_version.path)
    assert config["n_ctx"] == 1024
    assert config["temperature"] == 0.3
    assert config["n_threads"] is None


def test_import_restores_an_exported_configuration(model):
    services.set_config(model=model, values={"n_ctx": 1024, "n_threads": 2, "temperature": 0.3, "top_p": 0.6,
                                             "max_tokens": 300})
    exported = json.dumps(saved(model))
    services.set_config(model=model, values={"n_ctx": 2048, "n_threads": None, "temperature": 1.2,
                                             "top_p": 0.9, "max_tokens": 100})

    services.import_config(model=Model.objects.get(pk=model.pk), text=exported)

    assert saved(model) == json.loads(exported)


def test_a_new_model_starts_within_its_trained_context(model):
    assert saved(model)["n_ctx"] == 2048  # the tiny model's trained length, below the default 4096


def test_an_export_imports_unchanged_though_its_saved_n_ctx_is_above_the_trained_length(model):
    Model.objects.filter(pk=model.pk).update(n_ctx=4096)  # saved before the model's limit was known
    exported = json.dumps(saved(model))
    assert json.loads(exported)["n_ctx"] == 4096

    services.import_config(model=Model.objects.get(pk=model.pk), text=exported)

    assert saved(model) == json.loads(exported)


def test_import_refuses_text_that_is_not_json_with_a_clear_message(model):
    before = saved(model)

    with pytest.raises(services.RegistryError) as raised:
        services.import_config(model=model, text='{"n_ctx": 1024,')

    assert raised.value.message.startswith("the configuration is not valid JSON: ")
    assert "line 1" in raised.value.message
    assert saved(model) == before


def test_import_refuses_json_that_is_not_an_object(model):
    with pytest.raises(services.RegistryError) as raised:
        services.import_config(model=model, text="[1024]")

    assert raised.value.message == "the configuration must be a JSON object"


def test_import_refuses_an_invalid_value_naming_it(model):
    with pytest.raises(services.RegistryError) as raised:
        services.import_config(model=model, text='{"top_p": 5}')

    assert raised.value.param == "top_p"
    assert raised.value.message == "top_p: Ensure this value is less than or equal to 1."


def test_it_sets_the_batching_and_cache_fields(model):
    services.set_config(model=model, values={"slots": 8, "invariant": False, "max_workers": 2,
                                             "cache": False, "cache_ttl": 60})
    saved = Model.objects.get(pk=model.pk)
    assert (saved.slots, saved.invariant, saved.max_workers, saved.cache, saved.cache_ttl) == (8, False, 2, False, 60)
    assert saved.load_config()["slots"] == 8 and saved.load_config()["invariant"] is False


def test_it_refuses_zero_slots(model):
    with pytest.raises(services.RegistryError) as raised:
        services.set_config(model=model, values={"slots": 0})
    assert raised.value.param == "slots"
