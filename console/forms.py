from django import forms


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        error_messages={"required": "Give the key a name, e.g. “laptop” or “ci”."},
        widget=forms.TextInput(attrs={"placeholder": "e.g. laptop", "autocomplete": "off"}),
    )
