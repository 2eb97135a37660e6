from django.core.management.base import BaseCommand

from cache.tasks import purge_expired_answers


class Command(BaseCommand):
    help = "Remove expired cached answers in every tenant's schema."

    def handle(self, *args, **options):
        purged = purge_expired_answers()
        for slug, count in sorted(purged.items()):
            self.stdout.write(f"{slug}: {count} expired answer(s) removed")
        if not purged:
            self.stdout.write("nothing expired")
