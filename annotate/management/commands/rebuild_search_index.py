"""python manage.py rebuild_search_index: write the queue's full-text index anew from the trajectories.

SQLite's index keeps words, not texts, so it cannot delete an entry: each save leaves its
trajectory's previous entry behind, and a deleted trajectory its entries. They never match again,
but they take room (about 50 bytes each) and a little time in every search. After many saves or a
big delete, this drops them. It reads every trajectory's current rows, in one transaction.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from annotate.ingest.writer import rebuild_search_index


class Command(BaseCommand):
    help = "Write the full-text search index anew from every trajectory's current document."

    def handle(self, *args, **options):
        def progress(done: int, total: int) -> None:
            self.stdout.write(f"  {done:,} of {total:,} trajectories")

        n = rebuild_search_index(progress=progress)
        self.stdout.write(self.style.SUCCESS(f"Indexed {n:,} trajectories."))
