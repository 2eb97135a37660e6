from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import schema_context

from audit.chain import verify_chain
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Verify a tenant's audit hash chain; exit 1 naming the first broken link."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="tenant slug (default: every tenant)")

    def handle(self, *args, **options):
        tenants = Tenant.objects.exclude(status=Tenant.Status.TEMPLATE)
        if options["tenant"]:
            tenants = tenants.filter(slug=options["tenant"])
            if not tenants:
                raise CommandError(f"No tenant {options['tenant']!r}.")
        broken = []
        for tenant in tenants:
            with schema_context(tenant.schema_name):
                report = verify_chain()
            if report.ok:
                self.stdout.write(f"{tenant.slug}: ok ({report.records_checked} records)")
            else:
                broken.append(tenant.slug)
                self.stdout.write(
                    f"{tenant.slug}: BROKEN at record #{report.first_broken_seq} "
                    f"(id {report.first_broken_id}): {report.reason}"
                )
        if broken:
            raise CommandError(f"audit chain broken for: {', '.join(broken)}")
