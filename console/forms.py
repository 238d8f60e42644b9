from datetime import timedelta

from django import forms
from django.contrib.auth import get_user_model
from django.utils import timezone

from console import roles


def limit_field(label: str) -> forms.IntegerField:
    return forms.IntegerField(label=label, required=False, min_value=1,
                              widget=forms.NumberInput(attrs={"placeholder": "no limit", "min": 1}))


class LimitsForm(forms.Form):
    rpm = limit_field("Requests per minute")
    tokens_per_day = limit_field("Tokens per day")
    concurrency = limit_field("Concurrent requests")


class ApiKeyForm(LimitsForm):
    """A new key: its name, owner (admins only) and limits (empty: the owner's defaults)."""

    name = forms.CharField(
        max_length=100, label="Name",
        error_messages={"required": "Give the key a name, e.g. “laptop” or “ci”."},
        widget=forms.TextInput(attrs={"placeholder": "e.g. laptop", "autocomplete": "off"}),
    )
    owner = forms.ModelChoiceField(queryset=None, required=False, label="Owner", empty_label="me")
    models = forms.MultipleChoiceField(required=False, label="Models (none ticked: all)",
                                       widget=forms.CheckboxSelectMultiple)
    expires_in_days = forms.IntegerField(label="Expires in (days)", required=False, min_value=1,
                                         widget=forms.NumberInput(attrs={"placeholder": "never", "min": 1}))
    field_order = ["name", "owner", "rpm", "tokens_per_day", "concurrency", "models", "expires_in_days"]

    def __init__(self, data=None, *, user, **kwargs):
        from registry.models import Model

        super().__init__(data, **kwargs)
        self.fields["models"].choices = [(n, n) for n in Model.objects.values_list("name", flat=True)]
        if roles.is_admin(user):
            self.fields["owner"].queryset = get_user_model().objects.filter(is_active=True).order_by("username")
        else:
            del self.fields["owner"]

    def expires_at(self):
        days = self.cleaned_data.get("expires_in_days")
        return timezone.now() + timedelta(days=days) if days else None


class UserCreateForm(forms.Form):
    username = forms.CharField(max_length=150, label="Username",
                               widget=forms.TextInput(attrs={"autocomplete": "off"}))
    role = forms.ChoiceField(choices=[(r, r) for r in roles.ROLES], initial=roles.MEMBER, label="Role")


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=[(r, r) for r in roles.ROLES], label="Role")


class TeamForm(forms.Form):
    name = forms.CharField(max_length=100, label="Team name",
                           widget=forms.TextInput(attrs={"autocomplete": "off"}))


class TeamMemberForm(forms.Form):
    user = forms.ModelChoiceField(queryset=None, label="Add member")

    def __init__(self, data=None, *, team, **kwargs):
        super().__init__(data, auto_id=f"id_team{team.pk}_%s", **kwargs)
        self.fields["user"].queryset = (get_user_model().objects.filter(is_active=True)
                                        .exclude(teams=team).order_by("username"))


class ConfigForm(forms.Form):
    """A model's load configuration as typed numbers; registry.services.set_config judges the values."""

    n_ctx = forms.IntegerField(label="Context (n_ctx)")
    n_threads = forms.IntegerField(label="Threads (n_threads)", required=False,
                                   widget=forms.NumberInput(attrs={"placeholder": "all cores"}))
    n_gpu_layers = forms.IntegerField(label="GPU layers (n_gpu_layers)")
    gpu_id = forms.IntegerField(label="GPU (gpu_id)")
    temperature = forms.FloatField(label="Temperature")
    top_p = forms.FloatField(label="top_p")
    top_k = forms.IntegerField(label="top_k (0: all tokens)")
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


class UsageFilterForm(forms.Form):
    """The Usage page's filters (all optional). Members filter their own rows; the user filter is
    for admins and auditors."""

    STATUSES = [("", "any"), ("ok", "ok"), ("error", "error"), ("cancelled", "cancelled")]

    user = forms.ModelChoiceField(queryset=None, required=False, empty_label="anyone", to_field_name="username")
    key = forms.ModelChoiceField(queryset=None, required=False, empty_label="any key")
    model = forms.CharField(max_length=100, required=False)
    interface = forms.CharField(max_length=100, required=False, help_text="e.g. /v1/chat/completions")
    status = forms.ChoiceField(choices=STATUSES, required=False)
    since = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    until = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))

    def __init__(self, data=None, *, user, **kwargs):
        from django.contrib.auth import get_user_model

        from console.models import ApiKey
        from console.roles import can_audit

        super().__init__(data, **kwargs)
        everyone = can_audit(user)
        self.fields["user"].queryset = get_user_model().objects.order_by("username")
        keys = ApiKey.objects.select_related("user").order_by("name")
        self.fields["key"].queryset = keys if everyone else keys.filter(user=user)
        if not everyone:
            del self.fields["user"]

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError("The time range ends before it starts.")
        return data

    def filter(self, rows):
        data = self.cleaned_data
        lookups = {"user": data.get("user"), "api_key": data.get("key"), "model_name": data.get("model"),
                   "endpoint": data.get("interface"), "outcome": data.get("status"),
                   "created_at__gte": data.get("since"), "created_at__lte": data.get("until")}
        return rows.filter(**{k: v for k, v in lookups.items() if v not in (None, "")})
