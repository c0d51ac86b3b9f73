"""Export benchmark: re-exporting after editing 1 % of 10k trajectories, against a full export.

Both runs go through the real path the worker and the CLI take (pin revisions in the database →
render through the core, or take from the render cache → write JSONL, Parquet, save_to_disk, card,
audit), on a throwaway SQLite database, with the tiny tokenizer and TRL's qwen3 training template.
The full export starts with an empty render cache; the re-export pins the edited trajectories' new
revisions and renders only those. Target ≥ 10×.

    python bench/bench_export.py [N] [--verify]
    python bench/bench_export.py --smoke       # 100 trajectories, with --verify: seconds

``--verify`` also runs a cold export of the edited state and checks the re-export's files are
byte-identical to it.
"""

from __future__ import annotations

import copy
import os
import sys
import time
from pathlib import Path

from _django import setup

ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
SMOKE = "--smoke" in sys.argv  # a size that runs in seconds (the test suite runs it so the bench can't rot)
N = int(ARGS[0]) if ARGS else 100 if SMOKE else 10_000
EDIT_FRACTION = 0.01
VERIFY = "--verify" in sys.argv or SMOKE


def documents(n: int) -> list[dict]:
    """``n`` distinct trajectories: the demo's (every case type), each with its own numbers."""
    from annotate.demo import demo_trajectories

    base = [t.to_dict() for t in demo_trajectories()]
    out = []
    for i in range(n):
        d = copy.deepcopy(base[i % len(base)])
        d["turns"][0]["user"] = f"[request {i}] " + d["turns"][0]["user"]
        d["meta"]["external_id"] = f"bench-{i}"
        out.append(d)
    return out


def export(project, out_dir: Path, label: str):
    from training.snapshots import claim, create_snapshot, run_snapshot_export

    started = time.perf_counter()
    snap = create_snapshot(project, "sft", {"status": "approved"}, RENDER, None, out_dir=out_dir, enqueue=False,
                           reuse=False)
    claim(snap.pk)
    snap = run_snapshot_export(snap)
    seconds = time.perf_counter() - started
    print(f"{label:<28} {seconds:8.2f} s   {snap.message}")
    return snap, seconds


def main() -> None:
    root = Path(__file__).resolve().parents[1]
    cache = Path(os.environ.get("STUDIO_TEST_CACHE", root / "var" / "test-cache"))
    # The tiny tokenizer's folder is where an admin-set model root must allow it (or the export refuses it).
    os.environ["STUDIO_MODEL_ROOTS"] = os.pathsep.join(filter(None, [os.environ.get("STUDIO_MODEL_ROOTS"), str(cache)]))
    data = setup("export")
    from annotate.models import Project, Trajectory
    from annotate.ingest.writer import write_trajectories
    from annotate.workbench.documents import replace_document
    from annotate.trajectory import Trajectory as Canonical
    from training.export import directory_digest
    from training.tiny_model import build_tiny_model

    global RENDER
    tokenizer = build_tiny_model(cache / "tiny-qwen3")
    RENDER = {"template": "qwen3_training", "tokenizer": str(tokenizer), "tokenized": True}
    project = Project.objects.create(name="Bench", slug="bench")
    t0 = time.perf_counter()
    write_trajectories(project, [Canonical.from_dict(d) for d in documents(N)], status=Trajectory.APPROVED)
    print(f"{N} trajectories written in {time.perf_counter() - t0:.1f} s (data dir {data})")

    # One-time costs (importing transformers and datasets, loading the tokenizer, probing the template)
    # are paid before either timing, so the two runs compare steady-state work.
    import datasets  # noqa: F401

    from training.export import ExportSettings, RenderContext

    RenderContext.build(ExportSettings.from_dict({**RENDER, "kind": "sft"}))
    full, full_s = export(project, data / "full", "full export (cold cache)")

    edits = max(1, int(N * EDIT_FRACTION))
    step = N // edits
    for t in Trajectory.objects.filter(project=project).order_by("id")[::step][:edits]:
        doc = t.revisions.get(version=t.version).document
        doc["turns"][-1]["steps"][-1]["text"] += " (edited)"
        replace_document(t, Canonical.from_dict(doc), user=None, base_version=t.version, summary="bench edit")
    print(f"edited {edits} trajectories ({EDIT_FRACTION:.0%})")

    again, again_s = export(project, data / "again", "re-export after the edits")
    print(f"\nincremental re-export vs full export: {full_s / again_s:.1f}x faster (target >= 10x)")
    print(f"samples: full {full.sample_count}, re-export {again.sample_count}")

    if VERIFY:
        from training.snapshots.models import RenderCacheEntry

        RenderCacheEntry.objects.all().delete()
        cold, _ = export(project, data / "cold", "cold export of the edits")
        same = directory_digest(data / "again") == directory_digest(data / "cold")
        print(f"re-export files byte-identical to a cold export: {same}")
        if not same:
            sys.exit(1)


if __name__ == "__main__":
    main()
