from django.core.management.base import BaseCommand

from billing.spool import spool_replay


class Command(BaseCommand):
    help = "Apply the settlements spooled while the database was unavailable (each once)."

    def handle(self, *args, **options):
        applied = spool_replay()
        self.stdout.write(f"applied {applied} spooled settlement(s)")
