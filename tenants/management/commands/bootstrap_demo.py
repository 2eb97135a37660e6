import secrets

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from tenants import services
from tenants.models import ApiKey, Membership, Tenant

DEMO_SLUG = "acme"
DEMO_KEY_NAME = "demo key (make run)"


class Command(BaseCommand):
    help = (
        "Idempotently create the demo tenant, a demo staff login and a fresh API key for "
        "`make run`, and print how to use them."
    )

    def handle(self, *args, **options):
        tenant = Tenant.objects.filter(slug=DEMO_SLUG).first()
        if tenant is None:
            tenant = services.provision_tenant(name="Acme Corp (demo)", slug=DEMO_SLUG)
        user_model = get_user_model()
        password = secrets.token_urlsafe(12)
        user = user_model.objects.filter(username="demo").first()
        if user is None:
            user = services.create_staff_user(
                username="demo", email="demo@example.com", password=password, superuser=True
            )
        else:
            user.set_password(password)
            user.save(update_fields=["password"])
        services.set_membership(user=user, tenant=tenant, role=Membership.Role.ADMIN)
        for old in ApiKey.objects.filter(tenant=tenant, name=DEMO_KEY_NAME, revoked_at=None):
            services.revoke_api_key(key=old)
        issued = services.create_api_key(tenant=tenant, name=DEMO_KEY_NAME)
        try:
            call_command("load_prompt_defaults", verbosity=0)
        except Exception as exc:  # the demo still starts; the console shows what is missing
            self.stderr.write(f"Prompt defaults not loaded: {exc}")
        self.stdout.write(
            "\n".join(
                [
                    "",
                    "  Switchboard demo",
                    "  ----------------",
                    f"  Console:  http://127.0.0.1:8000/   user: demo   password: {password}",
                    f"  Tenant:   {tenant.name} ({tenant.slug})",
                    f"  API key:  {issued.plaintext}",
                    "  Try:      curl -s http://127.0.0.1:8000/v1/chat/completions \\",
                    f"              -H 'Authorization: Bearer {issued.plaintext}' \\",
                    "              -H 'Content-Type: application/json' \\",
                    '              -d \'{"model": "fast", "messages": [{"role": "user", "content": "Hello"}]}\'',
                    "",
                ]
            )
        )
