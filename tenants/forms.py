from django import forms

from tenants.models import ApiKey, Membership, Plan, Tenant, slug_validator


class ProvisionTenantForm(forms.Form):
    name = forms.CharField(max_length=200)
    slug = forms.CharField(max_length=41, validators=[slug_validator])
    plan = forms.ModelChoiceField(queryset=Plan.objects.all(), required=False)
    domain = forms.CharField(max_length=253, required=False)
    pii_mode = forms.ChoiceField(choices=Tenant.PiiMode.choices, initial=Tenant.PiiMode.REDACT)


class TenantSettingsForm(forms.ModelForm):
    class Meta:
        model = Tenant
        fields = ["name", "status", "pii_mode", "retention_days", "text_search_config"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["status"].choices = [
            c for c in Tenant.Status.choices if c[0] != Tenant.Status.TEMPLATE
        ]


class PlanForm(forms.ModelForm):
    allowed_aliases = forms.CharField(
        required=False, help_text="Comma-separated model aliases; empty allows all."
    )

    class Meta:
        model = Plan
        fields = [
            "name",
            "slug",
            "monthly_token_limit",
            "monthly_spend_limit",
            "soft_limit_percent",
            "requests_per_minute",
            "tokens_per_minute",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance and self.instance.pk:
            self.initial["allowed_aliases"] = ", ".join(self.instance.allowed_aliases)

    def clean_allowed_aliases(self) -> list[str]:
        raw = self.cleaned_data.get("allowed_aliases") or ""
        return [alias.strip() for alias in raw.split(",") if alias.strip()]

    def save(self, commit=True):
        self.instance.allowed_aliases = self.cleaned_data["allowed_aliases"]
        return super().save(commit)


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100)
    scopes = forms.MultipleChoiceField(
        choices=ApiKey.Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=ApiKey.ALL_SCOPES,
    )
    expires_at = forms.DateTimeField(required=False, help_text="Optional, UTC, YYYY-MM-DD HH:MM")


class MembershipForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Membership.Role.choices)
