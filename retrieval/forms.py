"""Console forms: upload a file or paste text, and the search playground."""

from __future__ import annotations

import json

from django import forms

from retrieval.search import MAX_QUERY_CHARS, MAX_TOP_K


def _tags(value: str) -> list[str]:
    return [tag.strip() for tag in (value or "").split(",") if tag.strip()]


def _json_object(value: str, label: str) -> dict:
    if not (value or "").strip():
        return {}
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise forms.ValidationError(f"{label} must be a JSON object: {exc}") from None
    if not isinstance(parsed, dict):
        raise forms.ValidationError(f"{label} must be a JSON object.")
    return parsed


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files from one input; cleans to a list (empty when none was chosen)."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("widget", MultipleFileInput(attrs={"multiple": True}))
        super().__init__(**kwargs)

    def clean(self, data, initial=None) -> list:
        if not data:
            return []
        files = data if isinstance(data, list | tuple) else [data]
        return [super(MultipleFileField, self).clean(item, initial) for item in files]


class DocumentForm(forms.Form):
    title = forms.CharField(
        max_length=300, required=False, help_text="For one document; files default to their name."
    )
    file = MultipleFileField(required=False)
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 6}), required=False)
    media_type = forms.ChoiceField(
        choices=[
            ("text/markdown", "Markdown"),
            ("text/plain", "Plain text"),
            ("text/html", "HTML"),
        ],
        required=False,
        help_text="For pasted text; uploads are recognised by their type or extension.",
    )
    metadata = forms.CharField(required=False, help_text='JSON, e.g. {"product": "crm"}')
    access_tags = forms.CharField(required=False, help_text="Comma-separated; empty = public")

    def clean_metadata(self) -> dict:
        return _json_object(self.cleaned_data["metadata"], "Metadata")

    def clean_access_tags(self) -> list[str]:
        return _tags(self.cleaned_data["access_tags"])

    def clean(self):
        data = super().clean()
        if not data.get("file") and not (data.get("text") or "").strip():
            raise forms.ValidationError("Choose a file or paste some text.")
        return data


class SearchForm(forms.Form):
    query = forms.CharField(max_length=MAX_QUERY_CHARS)
    top_k = forms.IntegerField(min_value=1, max_value=MAX_TOP_K, initial=8)
    access_tags = forms.CharField(required=False, help_text="The caller's tags, comma-separated")
    filters = forms.CharField(required=False, help_text='Metadata, e.g. {"product": ["crm"]}')

    def clean_access_tags(self) -> list[str]:
        return _tags(self.cleaned_data["access_tags"])

    def clean_filters(self) -> dict:
        return _json_object(self.cleaned_data["filters"], "Filters")
