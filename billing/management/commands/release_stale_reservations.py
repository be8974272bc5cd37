from django.core.management.base import BaseCommand

from billing.admission import reservations_release_stale


class Command(BaseCommand):
    help = "Release quota reservations past their expiry (left by server processes that died)."

    def handle(self, *args, **options):
        released = reservations_release_stale()
        self.stdout.write(f"released {released} stale reservation(s)")
