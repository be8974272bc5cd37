import os

from django.core.management.base import BaseCommand

from accounts.services import staff_user_ensure, staff_user_exists


class Command(BaseCommand):
    help = "Make sure a staff account can log in: from ADMIN_USERNAME/ADMIN_PASSWORD, or say how."

    def handle(self, *args, **options):
        # Read here, not from settings: the variables only matter to this command.
        username, password = os.environ.get("ADMIN_USERNAME", ""), os.environ.get("ADMIN_PASSWORD", "")
        if username and password:
            created = staff_user_ensure(username=username, password=password)
            self.stdout.write(f"{'created' if created else 'updated'} staff user {username}")
        elif staff_user_exists():
            self.stdout.write("a staff account exists; log in at /admin/")
        else:
            self.stdout.write(
                "no staff account yet: set ADMIN_USERNAME and ADMIN_PASSWORD (in .env or the "
                "environment) and run again, or run: .venv/bin/python manage.py createsuperuser"
            )
