from django.core.management.base import BaseCommand

from llm_models.services import models_seed


class Command(BaseCommand):
    help = "Create the catalog's models from llm_models/seed_models.json (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--update", action="store_true", help="Overwrite existing models' metadata from the file.")

    def handle(self, *args, update: bool = False, **options):
        result = models_seed(update=update)
        for name in result.created:
            self.stdout.write(f"created {name}")
        for name in result.updated:
            self.stdout.write(f"updated {name}")
        self.stdout.write(
            f"{len(result.created)} created, {len(result.updated)} updated, {len(result.unchanged)} unchanged"
        )
