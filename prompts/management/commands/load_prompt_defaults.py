from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import schema_context

from prompts.services import load_defaults
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Load the shipped prompt defaults (prompts/defaults/*.yaml) into tenant schemas."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="tenant slug (default: every tenant and the template)")

    def handle(self, *args, **options):
        tenants = Tenant.objects.all()
        if options["tenant"]:
            tenants = tenants.filter(slug=options["tenant"])
            if not tenants:
                raise CommandError(f"No tenant {options['tenant']!r}.")
        for tenant in tenants:
            with schema_context(tenant.schema_name):
                changed = load_defaults()
            if changed and options["verbosity"]:
                self.stdout.write(f"{tenant.slug}: {', '.join(changed)}")
