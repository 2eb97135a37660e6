import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from gateway.errors import SwitchboardError
from tenants import services
from tenants.models import Membership, Tenant


class Command(BaseCommand):
    help = (
        "Create a staff user (or reuse an existing one) and give it a role in a tenant. "
        "The password comes from --password-env (an environment variable's name) so it never "
        "appears in the process list."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", required=True)
        parser.add_argument("--email", default="")
        parser.add_argument(
            "--password-env",
            default="SWITCHBOARD_STAFF_PASSWORD",
            help="environment variable holding the password",
        )
        parser.add_argument("--tenant", help="tenant slug")
        parser.add_argument("--role", choices=Membership.Role.values)
        parser.add_argument("--superuser", action="store_true")

    def handle(self, *args, **options):
        if bool(options["tenant"]) != bool(options["role"]):
            raise CommandError("--tenant and --role go together.")
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            password = os.environ.get(options["password_env"])
            if not password:
                raise CommandError(f"Set the password in ${options['password_env']}.")
            try:
                user = services.create_staff_user(
                    username=options["username"],
                    email=options["email"],
                    password=password,
                    superuser=options["superuser"],
                )
            except SwitchboardError as exc:
                raise CommandError(exc.message) from exc
        if options["tenant"]:
            tenant = Tenant.objects.filter(slug=options["tenant"]).first()
            if tenant is None:
                raise CommandError(f"No tenant with slug {options['tenant']!r}.")
            services.set_membership(user=user, tenant=tenant, role=options["role"])
        self.stderr.write(f"Staff user {user.username} ready.")
