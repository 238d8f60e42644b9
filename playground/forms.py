from django import forms

from playground.models import Conversation
from playground.selectors import chat_models, teams_of


class SettingsForm(forms.ModelForm):
    """The model and sampling settings of a conversation."""

    model_name = forms.ChoiceField(label="Model")
    temperature = forms.FloatField(min_value=0, max_value=2, initial=0.7)
    top_p = forms.FloatField(label="top_p", min_value=0, max_value=1, initial=0.95)
    max_tokens = forms.IntegerField(label="Max tokens", min_value=1, max_value=32768, initial=256)

    class Meta:
        model = Conversation
        fields = ["model_name", "system_prompt", "temperature", "top_p", "max_tokens"]
        widgets = {"system_prompt": forms.Textarea(attrs={"rows": 3, "placeholder": "optional"})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        available = list(chat_models().values_list("name", flat=True))
        choices = [(name, name) for name in available]
        current = self.instance.model_name
        if current and current not in available:  # the model went away: show it, marked
            choices.insert(0, (current, f"{current} (unavailable)"))
        self.fields["model_name"].choices = choices


class NewConversationForm(SettingsForm):
    title = forms.CharField(max_length=200, required=False,
                            widget=forms.TextInput(attrs={"placeholder": "New room"}))
    team = forms.ModelChoiceField(queryset=None, required=False, empty_label="Only me",
                                  help_text="a team's members share the room")

    class Meta(SettingsForm.Meta):
        fields = ["title", "team", *SettingsForm.Meta.fields]

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = teams_of(user=user)


class RenameForm(forms.Form):
    title = forms.CharField(max_length=200, label="Title")
