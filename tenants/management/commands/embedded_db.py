from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from config.embedded import socket_dir_of, stop_embedded_database


class Command(BaseCommand):
    help = "Manage the embedded PostgreSQL (used when DATABASE_URL is not set)."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["status", "stop"])

    def handle(self, *args, **options):
        if not settings.EMBEDDED_DATABASE:
            raise CommandError("DATABASE_URL is set: there is no embedded database to manage.")
        data_dir = settings.EMBEDDED_DATABASE_DIR
        if options["action"] == "stop":
            stopped = stop_embedded_database(data_dir)
            self.stderr.write("stopped" if stopped else "not running")
        else:
            self.stdout.write(f"running, data in {data_dir}, socket in {socket_dir_of(data_dir)}")
