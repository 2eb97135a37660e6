"""Console: webhook endpoints (create with the secret shown once, rotate, remove), the delivery
log with redelivery, and a notice for endpoints disabled after persistent failure. Admins
change; other roles read."""

from django import forms
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from gateway.errors import SwitchboardError
from jobs import webhooks
from jobs.models import WebhookDelivery, WebhookEndpoint
from tenants.decorators import ADMIN_ROLES, READ_ROLES, tenant_view


class EndpointForm(forms.Form):
    url = forms.URLField(max_length=500)
    description = forms.CharField(max_length=200, required=False)
    events = forms.MultipleChoiceField(
        choices=[(e, e) for e in WebhookEndpoint.EVENTS],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None selected: every event.",
    )


@tenant_view(*READ_ROLES)
def endpoints(request):
    form = EndpointForm(request.POST or None)
    secret = None
    if request.method == "POST":
        if request.role not in ADMIN_ROLES:
            return render(request, "403.html", status=403)
        if form.is_valid():
            try:
                _, secret = webhooks.create_endpoint(**form.cleaned_data)
            except SwitchboardError as exc:
                form.add_error("url", exc.message)
            else:
                form = EndpointForm()
    context = {
        "endpoints": WebhookEndpoint.objects.order_by("id"),
        "form": form,
        "secret": secret,
        "can_edit": request.role in ADMIN_ROLES,
    }
    return render(request, "jobs/webhooks.html", context, status=400 if form.errors else 200)


@tenant_view(*READ_ROLES)
def deliveries(request, endpoint_id: int):
    endpoint = get_object_or_404(WebhookEndpoint, pk=endpoint_id)
    return render(
        request,
        "jobs/deliveries.html",
        {
            "endpoint": endpoint,
            "deliveries": endpoint.deliveries.all()[:200],
            "can_edit": request.role in ADMIN_ROLES,
        },
    )


@tenant_view(*ADMIN_ROLES)
@require_POST
def rotate(request, endpoint_id: int):
    endpoint = get_object_or_404(WebhookEndpoint, pk=endpoint_id)
    secret = webhooks.rotate_secret(endpoint=endpoint)
    return render(
        request,
        "jobs/webhooks.html",
        {
            "endpoints": WebhookEndpoint.objects.order_by("id"),
            "form": EndpointForm(),
            "secret": secret,
            "can_edit": True,
        },
    )


@tenant_view(*ADMIN_ROLES)
@require_POST
def remove(request, endpoint_id: int):
    get_object_or_404(WebhookEndpoint, pk=endpoint_id).delete()
    messages.success(request, "Endpoint removed.")
    return redirect("jobs:webhooks", slug=request.tenant.slug)


@tenant_view(*ADMIN_ROLES)
@require_POST
def enable(request, endpoint_id: int):
    WebhookEndpoint.objects.filter(pk=endpoint_id).update(
        enabled=True, consecutive_failures=0, disabled_reason=""
    )
    messages.success(request, "Endpoint enabled again.")
    return redirect("jobs:webhooks", slug=request.tenant.slug)


@tenant_view(*ADMIN_ROLES)
@require_POST
def redeliver(request, delivery_id: int):
    delivery = get_object_or_404(WebhookDelivery.objects.select_related("endpoint"), pk=delivery_id)
    ok = webhooks.redeliver(delivery=delivery).status == WebhookDelivery.Status.SUCCEEDED
    if ok:
        messages.success(request, "Delivered.")
    else:
        messages.error(
            request, f"Delivery failed again: {delivery.last_error or delivery.last_status_code}"
        )
    return redirect("jobs:deliveries", slug=request.tenant.slug, endpoint_id=delivery.endpoint_id)


@tenant_view(*ADMIN_ROLES)
@require_POST
def alert_ack(request, alert_id: int):
    from django.utils import timezone

    from jobs.models import Alert

    Alert.objects.filter(pk=alert_id, acknowledged_at__isnull=True).update(
        acknowledged_at=timezone.now()
    )
    return redirect(
        request.META.get("HTTP_REFERER") or "console:tenant_detail",
        **({} if request.META.get("HTTP_REFERER") else {"slug": request.tenant.slug}),
    )
