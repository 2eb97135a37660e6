"""Template context for every console page: the tenant switcher and the offline banner."""

from __future__ import annotations

from tenants import selectors


def console(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    from gateway.routing import get_routing_table

    alerts = []
    tenant = getattr(request, "tenant", None)
    if tenant is not None and getattr(request, "role", None):
        from datetime import timedelta

        from django.utils import timezone

        from jobs.models import Alert

        alerts = list(
            Alert.objects.filter(
                acknowledged_at__isnull=True, created_at__gte=timezone.now() - timedelta(days=1)
            )[:5]
        )
    return {
        "open_alerts": alerts,
        "switcher_tenants": list(
            selectors.tenants_for_user(user).select_related(None).only("name", "slug")[:200]
        ),
        "current_tenant": getattr(request, "tenant", None),
        "current_role": getattr(request, "role", None),
        "simulated_only": get_routing_table().simulated_only,
    }
