from django import forms


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        error_messages={"required": "Give the key a name, e.g. “laptop” or “ci”."},
        widget=forms.TextInput(attrs={"placeholder": "e.g. laptop", "autocomplete": "off"}),
    )


class ConfigForm(forms.Form):
    """A model's load configuration as typed numbers; registry.services.set_config judges the values."""

    n_ctx = forms.IntegerField(label="Context (n_ctx)")
    n_threads = forms.IntegerField(label="Threads (n_threads)", required=False,
                                   widget=forms.NumberInput(attrs={"placeholder": "all cores"}))
    n_gpu_layers = forms.IntegerField(label="GPU layers (n_gpu_layers)")
    gpu_id = forms.IntegerField(label="GPU (gpu_id)")
    temperature = forms.FloatField(label="Temperature")
    top_p = forms.FloatField(label="top_p")
    max_tokens = forms.IntegerField(label="Max tokens")

    def __init__(self, data=None, *, model, **kwargs):
        super().__init__(data, initial=model.config(), auto_id=f"id_{model.name}_%s", **kwargs)


class ConfigImportForm(forms.Form):
    """A configuration JSON file (as `Download JSON` writes it), read as text."""

    MAX_BYTES = 64 * 1024

    file = forms.FileField(label="Configuration JSON",
                           error_messages={"required": "Choose a JSON file to import."},
                           widget=forms.ClearableFileInput(attrs={"accept": ".json,application/json"}))

    def __init__(self, data=None, files=None, *, model, **kwargs):
        super().__init__(data, files, auto_id=f"id_{model.name}_%s", **kwargs)

    def clean_file(self) -> str:
        upload = self.cleaned_data["file"]
        if upload.size > self.MAX_BYTES:
            raise forms.ValidationError(f"The file is larger than {self.MAX_BYTES // 1024} KB; "
                                        f"a configuration is a few lines of JSON.")
        try:
            return upload.read().decode("utf-8")
        except UnicodeDecodeError:
            raise forms.ValidationError("The file is not UTF-8 text.") from None


class PullForm(forms.Form):
    source = forms.CharField(
        max_length=1000,
        error_messages={"required": "Say what to pull: a URL, a file path or a catalog name."},
        widget=forms.TextInput(attrs={
            "placeholder": "https://…/model.gguf, hf://org/repo/file.gguf, /path/to/file.gguf, "
                           "lanthorn://host:port/model, or a catalog name",
            "autocomplete": "off", "size": 60}),
    )
    name = forms.CharField(required=False, label="Name (optional)",
                           widget=forms.TextInput(attrs={"placeholder": "from the source", "autocomplete": "off"}))
    sha256 = forms.CharField(required=False, label="sha256 (optional)",
                             widget=forms.TextInput(attrs={"placeholder": "64 hex digits", "autocomplete": "off",
                                                           "size": 30}))
