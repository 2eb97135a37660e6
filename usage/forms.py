from django import forms

from usage.models import Limit


class DateRangeForm(forms.Form):
    date_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))


class LimitForm(forms.Form):
    scope = forms.ChoiceField(choices=Limit.Scope.choices)
    scope_value = forms.CharField(
        required=False,
        max_length=256,
        help_text="key id, feature slug, end-user id or * (each end user)",
    )
    metric = forms.ChoiceField(choices=Limit.Metric.choices)
    hard = forms.DecimalField(min_value=0, max_digits=18, decimal_places=6)
    soft_percent = forms.IntegerField(min_value=1, max_value=100, initial=80)
