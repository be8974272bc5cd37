from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from gateway.settings import env


class Command(BaseCommand):
    help = "Make sure a staff account can log in: from ADMIN_USERNAME/ADMIN_PASSWORD, or say how."

    def handle(self, *args, **options):
        users = get_user_model().objects
        username, password = env("ADMIN_USERNAME"), env("ADMIN_PASSWORD")
        if username and password:
            user, created = users.get_or_create(username=username)
            user.is_staff = user.is_superuser = True
            user.set_password(password)
            user.save()
            self.stdout.write(f"{'created' if created else 'updated'} staff user {username}")
        elif users.filter(is_staff=True, is_active=True).exists():
            self.stdout.write("a staff account exists; log in at /admin/")
        else:
            self.stdout.write(
                "no staff account yet: set ADMIN_USERNAME and ADMIN_PASSWORD (in .env or the "
                "environment) and run again, or run: .venv/bin/python manage.py createsuperuser"
            )
