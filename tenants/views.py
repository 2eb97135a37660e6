"""Console pages for tenants, plans, members and API keys."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from gateway.errors import SwitchboardError
from tenants import selectors, services
from tenants.decorators import ADMIN_ROLES, READ_ROLES, superuser_view, tenant_view
from tenants.forms import (
    ApiKeyForm,
    MembershipForm,
    PlanForm,
    ProvisionTenantForm,
    TenantSettingsForm,
)
from tenants.models import ApiKey, Membership, Plan


@login_required
def home(request):
    tenants = selectors.tenants_for_user(request.user)
    if not request.user.is_superuser and tenants.count() == 1:
        return redirect("console:tenant_detail", slug=tenants.first().slug)
    return redirect("console:tenant_list")


@login_required
def tenant_list(request):
    tenants = selectors.tenants_for_user(request.user).order_by("name")
    form = ProvisionTenantForm() if request.user.is_superuser else None
    return render(request, "tenants/tenant_list.html", {"tenants": tenants, "form": form})


@superuser_view
@require_POST
def tenant_provision(request):
    form = ProvisionTenantForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            tenant = services.provision_tenant(
                name=data["name"],
                slug=data["slug"],
                plan=data["plan"],
                domain=data["domain"] or None,
                pii_mode=data["pii_mode"],
            )
        except SwitchboardError as exc:
            form.add_error(exc.param if exc.param in form.fields else None, exc.message)
        else:
            messages.success(request, f"Tenant {tenant.name} provisioned.")
            return redirect("console:tenant_detail", slug=tenant.slug)
    tenants = selectors.tenants_for_user(request.user).order_by("name")
    return render(
        request, "tenants/tenant_list.html", {"tenants": tenants, "form": form}, status=400
    )


@tenant_view(*READ_ROLES)
def tenant_detail(request):
    tenant = request.tenant
    context = {
        "tenant": tenant,
        "domains": tenant.domains.all(),
        "members": tenant.memberships.select_related("user").order_by("user__username"),
        "active_keys": tenant.api_keys.filter(revoked_at__isnull=True).count(),
    }
    return render(request, "tenants/tenant_detail.html", context)


@tenant_view(*ADMIN_ROLES)
def tenant_settings(request):
    tenant = request.tenant
    form = TenantSettingsForm(request.POST or None, instance=tenant)
    if request.method == "POST" and form.is_valid():
        status = form.cleaned_data.pop("status")
        fields = {k: v for k, v in form.cleaned_data.items() if k in form.changed_data}
        if fields:
            services.update_tenant_settings(tenant=tenant, **fields)
        if status != tenant.status:
            services.set_tenant_status(tenant=tenant, status=status)
        messages.success(request, "Settings saved.")
        return redirect("console:tenant_settings", slug=tenant.slug)
    return render(request, "tenants/tenant_settings.html", {"tenant": tenant, "form": form})


@superuser_view
def plan_list(request):
    return render(request, "tenants/plan_list.html", {"plans": Plan.objects.all()})


@superuser_view
def plan_edit(request, plan_id: int | None = None):
    plan = get_object_or_404(Plan, pk=plan_id) if plan_id else None
    form = PlanForm(request.POST or None, instance=plan)
    if request.method == "POST" and form.is_valid():
        saved = form.save()
        messages.success(request, f"Plan {saved.name} saved.")
        return redirect("console:plan_list")
    return render(request, "tenants/plan_edit.html", {"form": form, "plan": plan})


@tenant_view(*READ_ROLES)
def api_keys(request):
    tenant = request.tenant
    form = ApiKeyForm(request.POST or None)
    issued = None
    if request.method == "POST":
        if request.role not in ADMIN_ROLES:
            raise PermissionDenied("Only tenant admins may create API keys.")
        if form.is_valid():
            try:
                issued = services.create_api_key(
                    tenant=tenant,
                    name=form.cleaned_data["name"],
                    scopes=form.cleaned_data["scopes"],
                    expires_at=form.cleaned_data["expires_at"],
                    created_by_id=request.user.id,
                )
            except SwitchboardError as exc:
                form.add_error(None, exc.message)
            else:
                form = ApiKeyForm()
    context = {
        "tenant": tenant,
        "keys": ApiKey.objects.filter(tenant=tenant),
        "form": form,
        "issued": issued,
        "can_manage": request.role in ADMIN_ROLES,
    }
    template = "tenants/_keys.html" if request.htmx else "tenants/api_keys.html"
    return render(request, template, context)


@tenant_view(*ADMIN_ROLES)
@require_POST
def api_key_revoke(request, key_id: int):
    key = get_object_or_404(ApiKey, pk=key_id, tenant=request.tenant)
    services.revoke_api_key(key=key)
    messages.success(request, f"Key {key.prefix}… revoked.")
    if request.htmx:
        context = {
            "tenant": request.tenant,
            "keys": ApiKey.objects.filter(tenant=request.tenant),
            "form": ApiKeyForm(),
            "issued": None,
            "can_manage": True,
        }
        return render(request, "tenants/_keys.html", context)
    return redirect("console:api_keys", slug=request.tenant.slug)


@tenant_view(*ADMIN_ROLES)
def members(request):
    tenant = request.tenant
    form = MembershipForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = get_user_model().objects.filter(username=form.cleaned_data["username"]).first()
        if user is None:
            form.add_error("username", "No staff user with this username.")
        else:
            services.set_membership(user=user, tenant=tenant, role=form.cleaned_data["role"])
            messages.success(request, f"{user.username} is now {form.cleaned_data['role']}.")
            return redirect("console:members", slug=tenant.slug)
    context = {
        "tenant": tenant,
        "memberships": Membership.objects.filter(tenant=tenant).select_related("user"),
        "form": form,
    }
    return render(request, "tenants/members.html", context)
