from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from gateway.errors import SwitchboardError
from tenants import services
from tenants.models import ApiKey, Tenant


class Command(BaseCommand):
    help = "Create an API key for a tenant. The key is printed once, alone, on standard output."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--name", required=True)
        parser.add_argument(
            "--scopes",
            default=",".join(ApiKey.ALL_SCOPES),
            help="comma-separated: " + ", ".join(ApiKey.ALL_SCOPES),
        )
        parser.add_argument("--expires-in-days", type=int)

    def handle(self, *args, **options):
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant with slug {options['tenant']!r}.")
        expires_at = None
        if options["expires_in_days"]:
            expires_at = timezone.now() + timedelta(days=options["expires_in_days"])
        try:
            issued = services.create_api_key(
                tenant=tenant,
                name=options["name"],
                scopes=[s.strip() for s in options["scopes"].split(",") if s.strip()],
                expires_at=expires_at,
            )
        except SwitchboardError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(issued.plaintext)
