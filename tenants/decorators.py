"""Role checks for console views under /t/<slug>/ (the middleware has resolved the tenant)."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404

from tenants.models import Membership

READ_ROLES = tuple(Membership.Role.values)
EDIT_ROLES = (Membership.Role.ADMIN, Membership.Role.EDITOR)
REVIEW_ROLES = (Membership.Role.ADMIN, Membership.Role.REVIEWER)
ADMIN_ROLES = (Membership.Role.ADMIN,)


def tenant_view(*roles: str):
    """Console view of one tenant: logged in, a member, and one of ``roles`` (403 otherwise)."""
    allowed = roles or READ_ROLES

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if getattr(request, "tenant", None) is None or request.role is None:
                raise Http404("No such tenant.")
            if request.role not in allowed:
                raise PermissionDenied("Your role in this tenant does not allow this.")
            kwargs.pop("slug", None)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def superuser_view(view):
    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_superuser:
            raise PermissionDenied("Only operators (superusers) may do this.")
        return view(request, *args, **kwargs)

    return wrapper
