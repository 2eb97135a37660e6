import io
import os

import pytest
from django.core.management import call_command

from tenants.models import ApiKey, Membership, Tenant


@pytest.mark.django_db(transaction=True)
def test_scripts_can_provision_everything_without_a_browser(monkeypatch):
    call_command("provision_tenant", name="Scripted", slug="scripted", domain="scripted.example")
    tenant = Tenant.objects.get(slug="scripted")
    try:
        assert tenant.domains.get().domain == "scripted.example"
        monkeypatch.setenv("SWITCHBOARD_STAFF_PASSWORD", "a-Long-pass-123")
        call_command("create_staff_user", username="cs1", tenant="scripted", role="editor")
        assert Membership.objects.get(user__username="cs1").role == "editor"
        out, err = io.StringIO(), io.StringIO()
        call_command("create_api_key", tenant="scripted", name="ci", stdout=out, stderr=err)
        printed = out.getvalue().strip()
        assert printed.startswith("sk-sb-") and "\n" not in printed
        assert (
            ApiKey.objects.get(tenant=tenant).prefix
            == printed[: len(ApiKey.objects.get(tenant=tenant).prefix)]
        )
    finally:
        tenant.delete(force_drop=True)
    assert os.environ.get("SWITCHBOARD_STAFF_PASSWORD")
