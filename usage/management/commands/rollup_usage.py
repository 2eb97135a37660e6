import time
from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import schema_context

from tenants.models import Tenant
from usage.rollups import rebuild_rollups


class Command(BaseCommand):
    help = (
        "Build (or rebuild) the usage rollups from the usage records: once after the migration "
        "that adds rollups, and to repair a range. Safe to rerun and to run while calls are "
        "being recorded."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--tenant", action="append", help="tenant slug (repeatable; default: every tenant)"
        )
        parser.add_argument("--since", type=date.fromisoformat, help="first UTC day (YYYY-MM-DD)")
        parser.add_argument("--until", type=date.fromisoformat, help="last UTC day (YYYY-MM-DD)")

    def handle(self, *args, **options):
        tenants = Tenant.objects.exclude(status=Tenant.Status.TEMPLATE).order_by("slug")
        if options["tenant"]:
            tenants = tenants.filter(slug__in=options["tenant"])
            missing = set(options["tenant"]) - {t.slug for t in tenants}
            if missing:
                raise CommandError(f"No tenant {', '.join(sorted(missing))}.")
        for tenant in tenants:
            started = time.perf_counter()
            # An explicitly cross-tenant job: each tenant's rollups from its own records.
            with schema_context(tenant.schema_name):
                days = rebuild_rollups(since=options["since"], until=options["until"])
            self.stdout.write(
                f"{tenant.slug}: {len(days)} days rebuilt in {time.perf_counter() - started:.1f} s"
            )
