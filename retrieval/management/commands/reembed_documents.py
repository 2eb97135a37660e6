"""Move every tenant's stored vectors into the installation's current embedding space.

Run it after changing SWITCHBOARD_EMBEDDER. Search compares only vectors of the current space,
so until a chunk is re-embedded it is found by full text alone, never compared across spaces.
"""

from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import schema_context

from retrieval import services
from retrieval.embedders.base import EmbedderUnavailable
from retrieval.embedding import embedding_space, get_embedder
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Re-embed document chunks whose vector is missing or from another embedding space."

    def add_arguments(self, parser):
        parser.add_argument(
            "--tenant", action="append", help="tenant slug (repeatable; default all)"
        )
        parser.add_argument("--batch-size", type=int, default=64)

    def handle(self, *args, tenant=None, batch_size=64, **options):
        tenants = Tenant.objects.exclude(status=Tenant.Status.TEMPLATE).order_by("slug")
        if tenant:
            tenants = tenants.filter(slug__in=tenant)
            missing = set(tenant) - set(tenants.values_list("slug", flat=True))
            if missing:
                raise CommandError(f"unknown tenant(s): {', '.join(sorted(missing))}")
        space = embedding_space()
        self.stdout.write(f"embedding space: {space}")
        total = 0
        for row in tenants:
            # Explicitly cross-tenant: one schema after another.
            with schema_context(row.schema_name):
                try:
                    count = services.reembed_documents(
                        embedder=get_embedder(tenant=row, record_local=True), batch_size=batch_size
                    )
                except EmbedderUnavailable as exc:
                    raise CommandError(f"{row.slug}: the embedder is unavailable: {exc}") from exc
            total += count
            self.stdout.write(f"{row.slug}: {count} chunks re-embedded")
        self.stdout.write(self.style.SUCCESS(f"done: {total} chunks in {space}"))
