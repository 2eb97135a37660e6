import json

from django import forms

from prompts.models import EvalCase, Feature, PromptVersion


class JsonField(forms.CharField):
    widget = forms.Textarea(attrs={"rows": 4})

    def __init__(self, *args, kind=dict, **kwargs):
        self.kind = kind
        super().__init__(*args, required=False, **kwargs)

    def prepare_value(self, value):
        if isinstance(value, dict | list):
            return json.dumps(value, indent=2)
        return value

    def clean(self, value):
        value = super().clean(value)
        if not value:
            return self.kind()
        try:
            parsed = json.loads(value)
        except ValueError:
            raise forms.ValidationError("Not valid JSON.") from None
        if not isinstance(parsed, self.kind):
            raise forms.ValidationError(f"Must be a JSON {self.kind.__name__}.")
        return parsed


class VersionForm(forms.ModelForm):
    variables = forms.CharField(required=False, help_text="Comma-separated input variables")
    params = JsonField(kind=dict, help_text='e.g. {"temperature": 0, "max_tokens": 400}')
    contract = JsonField(
        kind=dict,
        help_text='{"kind": "text"}, {"kind": "classification", '
        '"labels": [...]}, or {"kind": "json_schema", "schema": {...}}',
    )
    few_shot = JsonField(kind=list, help_text='[{"input": {...}, "output": "..."}]')

    class Meta:
        model = PromptVersion
        fields = ["system", "context_template", "user_template", "changelog"]
        widgets = {
            "system": forms.Textarea(attrs={"rows": 8}),
            "context_template": forms.Textarea(attrs={"rows": 3}),
            "user_template": forms.Textarea(attrs={"rows": 4}),
            "changelog": forms.Textarea(attrs={"rows": 2}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        instance = self.instance
        if instance and instance.pk:
            self.initial.update(
                {
                    "variables": ", ".join(instance.variables),
                    "params": instance.params,
                    "contract": instance.contract,
                    "few_shot": instance.few_shot,
                }
            )

    def clean_variables(self) -> list[str]:
        raw = self.cleaned_data.get("variables") or ""
        return [v.strip() for v in raw.split(",") if v.strip()]

    def version_fields(self) -> dict:
        data = self.cleaned_data
        return {
            "system": data["system"],
            "context_template": data.get("context_template", ""),
            "user_template": data["user_template"],
            "variables": data["variables"],
            "params": data["params"],
            "contract": data["contract"] or {"kind": "text"},
            "few_shot": data["few_shot"],
            "changelog": data.get("changelog", ""),
        }


class SplitForm(forms.Form):
    reason = forms.CharField(required=False, max_length=500)

    def __init__(self, *args, feature=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.versions = [v for v in feature.versions.all() if v.is_published]
        for version in self.versions:
            self.fields[f"weight_{version.id}"] = forms.IntegerField(
                min_value=0, max_value=100, required=False, label=f"{version.label} weight %"
            )

    def split(self) -> list[dict]:
        return [
            {"version_id": v.id, "weight": self.cleaned_data[f"weight_{v.id}"]}
            for v in self.versions
            if self.cleaned_data.get(f"weight_{v.id}")
        ]


class EvalCaseForm(forms.Form):
    name = forms.CharField(max_length=200)
    input = JsonField(kind=dict, help_text='The feature\'s variables, e.g. {"subject": "…"}')
    check_kind = forms.ChoiceField(choices=EvalCase.Check.choices, label="Check")
    expected = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="A label; a text the output contains (any case); a JSON object of fields "
        "that must be equal; nothing for “valid”.",
    )

    def clean(self):
        data = super().clean()
        raw = (data.get("expected") or "").strip()
        if data.get("check_kind") == EvalCase.Check.FIELDS and raw:
            try:
                data["expected"] = json.loads(raw)
            except ValueError:
                self.add_error("expected", "Not valid JSON.")
        else:
            data["expected"] = raw or None
        return data


class CachePolicyForm(forms.ModelForm):
    reason = forms.CharField(required=False, max_length=500)

    class Meta:
        model = Feature
        fields = [
            "cache_mode",
            "cache_ttl_seconds",
            "cache_max_distance",
            "cache_personalised",
            "cache_fallback_max_distance",
        ]
        labels = {
            "cache_mode": "Cache",
            "cache_ttl_seconds": "TTL (seconds)",
            "cache_max_distance": "Semantic distance (cosine, ≤)",
            "cache_personalised": "Personalised (answers cached per end user)",
            "cache_fallback_max_distance": "Similar answer during an outage: distance (≤; empty = off)",
        }
        widgets = {
            "cache_max_distance": forms.NumberInput(attrs={"step": "0.01", "min": 0, "max": 2}),
            "cache_fallback_max_distance": forms.NumberInput(
                attrs={"step": "0.01", "min": 0, "max": 2}
            ),
        }

    def policy(self) -> dict:
        return {name: self.cleaned_data[name] for name in self.Meta.fields}


class RunModeForm(forms.Form):
    async_only = forms.BooleanField(
        required=False, label="Async only (runs answer 202 with a job; sync and stream are refused)"
    )
    reason = forms.CharField(required=False, max_length=500)
