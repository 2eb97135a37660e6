"""Run the lost-call sweep over every tenant now (what Celery beat does every minute)."""

from django.core.management.base import BaseCommand

from usage.tasks import sweep_all_tenants


class Command(BaseCommand):
    help = (
        "Turn reservations left unsettled by a dead process into 'lost' usage and audit "
        "records in every tenant, and prune spent rate windows and old reservations."
    )

    def handle(self, *args, **options) -> None:
        swept = sweep_all_tenants()
        for slug, count in sorted(swept.items()):
            self.stdout.write(f"{slug}: {count} lost call(s) recorded")
        self.stdout.write(f"swept {sum(swept.values())} reservation(s)")
