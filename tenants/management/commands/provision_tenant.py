from django.core.management.base import BaseCommand, CommandError

from gateway.errors import SwitchboardError
from tenants import services
from tenants.models import Plan, Tenant


class Command(BaseCommand):
    help = "Provision a tenant: its schema, primary domain and plan."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--slug", required=True)
        parser.add_argument("--plan", help="plan slug (default: standard)")
        parser.add_argument("--domain", help="primary hostname, e.g. acme.api.example.com")
        parser.add_argument("--pii-mode", choices=Tenant.PiiMode.values, default="redact")

    def handle(self, *args, **options):
        plan = None
        if options["plan"]:
            plan = Plan.objects.filter(slug=options["plan"]).first()
            if plan is None:
                raise CommandError(f"No plan with slug {options['plan']!r}.")
        try:
            tenant = services.provision_tenant(
                name=options["name"],
                slug=options["slug"],
                plan=plan,
                domain=options["domain"],
                pii_mode=options["pii_mode"],
            )
        except SwitchboardError as exc:
            raise CommandError(exc.message) from exc
        self.stderr.write(f"Tenant {tenant.slug} provisioned in schema {tenant.schema_name}.")
