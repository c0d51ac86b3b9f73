"""Suggestions from corrections: what the lazy, revision-based scan costs, against the editor's save.

    python bench/bench_pairs.py [N_TRAJECTORIES] [N_CORRECTED]
    python bench/bench_pairs.py --smoke        # 200 trajectories, 5 corrected: seconds

Writes N demo-like trajectories (default 10,000) into a throwaway SQLite database, corrects
N_CORRECTED of them (default 1 %) through ``replace_document`` (the save every editor path goes
through), then times, in the same run:

- the save itself (the baseline: what a hook in the save path would have added to);
- ``refresh_suggestions`` with the corrections pending (per corrected trajectory, the cost a
  hook would have put on every save), and again with nothing new (the fixed cost of opening the
  suggestions page at this size).
"""

from __future__ import annotations

import statistics
import sys
import time

from _django import setup


def main(n: int = 10_000, corrected: int = 100) -> None:
    setup("pairs")
    from annotate.demo import TOOLS, demo_trajectories
    from annotate.models import PairSuggestion, Project, Tool, Trajectory
    from annotate.pairs.services import refresh_suggestions
    from annotate.workbench.documents import replace_document

    project = Project.objects.create(name="Bench", slug="bench")
    for spec in TOOLS:
        Tool.objects.create(project=project, name=spec["name"], description=spec["description"],
                            parameters=spec["parameters"])
    from annotate.ingest.writer import write_trajectories

    demo = demo_trajectories()
    t0 = time.perf_counter()
    write_trajectories(project, [demo[i % len(demo)] for i in range(n)])
    print(f"wrote {n:,} trajectories in {time.perf_counter() - t0:.1f} s")

    # Correct the last answer of every (n / corrected)-th trajectory, like an annotator's step save.
    ids = list(Trajectory.objects.filter(project=project).order_by("id").values_list("id", flat=True))
    chosen = ids[:: max(1, n // corrected)][:corrected]
    saves = []
    for pk in chosen:
        t = Trajectory.objects.get(pk=pk)
        doc = t.to_canonical()
        last = doc.turns[-1].steps[-1]
        last.text = last.text + " (checked)"
        start = time.perf_counter()
        replace_document(t, doc, user=None, base_version=t.version, summary="bench correction")
        saves.append(time.perf_counter() - start)
    save_ms = statistics.median(saves) * 1000

    start = time.perf_counter()
    scanned = refresh_suggestions(project)
    first = time.perf_counter() - start
    start = time.perf_counter()
    again = refresh_suggestions(project)
    idle = time.perf_counter() - start
    per = first / max(1, scanned) * 1000
    print(f"{scanned} corrected trajectories → {PairSuggestion.objects.count()} suggestions")
    print(f"editor save (baseline), median:          {save_ms:7.2f} ms")
    print(f"suggestion scan per corrected trajectory: {per:7.2f} ms  "
          f"(= {per / save_ms:.2f}× a save, paid once when the page opens, not on each save)")
    print(f"refresh with {scanned} pending:              {first * 1000:7.1f} ms")
    print(f"refresh with nothing new ({again} scanned):     {idle * 1000:7.1f} ms at {n:,} trajectories")


if __name__ == "__main__":
    if "--smoke" in sys.argv:  # a size that runs in seconds (the test suite runs it so the bench can't rot)
        main(200, 5)
    else:
        main(*(int(a) for a in sys.argv[1:3]))
