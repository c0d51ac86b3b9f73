"""Set up Django on a fresh, throwaway data dir (SQLite) for a benchmark."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def setup(name: str) -> Path:
    sys.path.insert(0, str(ROOT))
    data = Path(os.environ.get("BENCH_DATA_DIR") or tempfile.mkdtemp(prefix=f"bench-{name}-"))
    os.environ["STUDIO_DATA_DIR"] = str(data)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return data
