from django.core.management.base import BaseCommand

from billing.models import Period
from billing.quotas import quotas_reset


class Command(BaseCommand):
    help = "Reset used tokens and spend of quotas now. Usage records are kept."

    def add_arguments(self, parser):
        parser.add_argument("--user", help="Only this username.")
        parser.add_argument(
            "--period", choices=[Period.DAILY, Period.WEEKLY, Period.MONTHLY], help="Only quotas with this period."
        )
        parser.add_argument("--dry-run", action="store_true", help="Show what would be reset; change nothing.")

    def handle(self, *args, user=None, period=None, dry_run=False, **options):
        results = quotas_reset(username=user, period=period, dry_run=dry_run)
        verb = "would reset" if dry_run else "reset"
        for result in results:
            self.stdout.write(f"{verb} {result.user}: {result.used_tokens} tokens, ${result.used_usd} used")
        self.stdout.write(f"{len(results)} quota(s) {verb}")
