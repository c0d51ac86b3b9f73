"""Import benchmark: 100k generated trajectories of ~10 steps (~2 KB each) into SQLite.

Prints trajectories/s for the full path (bytes → parse → convert → validate → rows of
trajectories, turns, steps and labels, and the full-text index, committed) through
``annotate.ingest.writer.import_file``, what the upload page, the API and the CLI call, against a
baseline measured in the same run: storing each record unparsed as one JSON blob row (what a
generic labelling tool does with an unstructured task). Target ≥ 10,000 trajectories/s (issue "Nothing lost at the door"; it was 5,000).

    python bench/bench_import.py [N] [ROUNDS]
    python bench/bench_import.py --smoke       # 2,000 trajectories, one round: seconds

Each round times the baseline (into a new file) then ours (a new project in the same database, so
rounds 2 and 3 write beside the earlier rounds' rows, as a real import would; this VM's speed drifts by
±25 % within minutes: the best and the median of the rounds are printed, with each round's
ratio), and the conservation check's share of the import time.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import statistics
import sys
import time

from _django import setup

SMOKE = "--smoke" in sys.argv  # a size that runs in seconds (the test suite runs it so the bench can't rot)
ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
N = int(ARGS[0]) if ARGS else 2_000 if SMOKE else 100_000
REPEATS = int(ARGS[1]) if len(ARGS) > 1 else 1 if SMOKE else 3
CHUNK = 10_000

TOOLS = [{"name": f"tool_{i}", "description": f"Tool number {i} does something useful.",
          "parameters": {"type": "object", "properties": {"q": {"type": "string"}, "n": {"type": "integer"}},
                         "required": ["q"]}} for i in range(4)]


def record(i: int, rng: random.Random) -> dict:
    turns = []
    for t in range(2):
        steps = []
        for k in range(2):
            cid = f"c{t}{k}"
            steps += [{"kind": "think", "text": f"Turn {t}: I should look up item {i}-{k} with a tool before answering."},
                      {"kind": "tool_call", "name": f"tool_{rng.randrange(4)}", "call_id": cid,
                       "arguments": {"q": f"query {i} {k} " + "x" * rng.randrange(20, 60), "n": k}},
                      {"kind": "tool_result", "call_id": cid, "name": "tool_0",
                       "text": json.dumps({"items": [f"result {i}-{k}-{j}" for j in range(6)], "ok": True})}]
        steps = steps[:4] + [{"kind": "answer", "text": f"Here is what I found for request {i}: " + "y" * 120}]
        turns.append({"user": f"Request {i}, turn {t}: please find the details " + "z" * 80, "steps": steps})
    return {"system": "You are a helpful assistant with tools.", "tools": TOOLS, "turns": turns,
            "meta": {"external_id": f"r{i}", "case_types": ["tool_required"]}}


def conservation_time(chunk: bytes) -> float:
    """Seconds per trajectory that annotate.formats.conservation.check takes on the records of ``chunk``
    (timed alone, on records already parsed and converted, as the import calls it)."""
    from annotate.formats import conservation, raw

    pairs = [(rec, raw.to_trajectory(rec, source="raw:bench")) for rec in map(json.loads, chunk.decode().splitlines())]
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for rec, traj in pairs:
            conservation.check(rec, traj)
        best = min(best, time.perf_counter() - t0)
    return best / len(pairs)


def main() -> None:
    data = setup("import")
    from annotate.ingest import sqlite
    from annotate.ingest.writer import get_or_create_project, import_file
    from annotate.models import Step

    rng = random.Random(0)
    chunks = []
    for start in range(0, N, CHUNK):
        lines = [json.dumps(record(i, rng)) for i in range(start, min(N, start + CHUNK))]
        chunks.append(("\n".join(lines) + "\n").encode())
    total_bytes = sum(len(c) for c in chunks)
    steps = sum(len(t["steps"]) for t in record(0, random.Random(0))["turns"])
    print(f"{N:,} trajectories, {steps} steps each, {total_bytes / N:,.0f} bytes each on average, "
          f"in files of {CHUNK:,}; {REPEATS} rounds, each timing the baseline (a new file) then ours (a new project, same database)")

    def baseline(k: int) -> float:
        """One unparsed JSON blob row per record (plus json.loads to split lines), same SQLite settings."""
        db = sqlite3.connect(data / f"baseline{k}.sqlite3")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE task (id INTEGER PRIMARY KEY, data TEXT NOT NULL)")
        t0 = time.perf_counter()
        for c in chunks:
            rows = [(json.dumps(json.loads(line)),) for line in c.decode().splitlines() if line]
            with db:
                db.executemany("INSERT INTO task (data) VALUES (?)", rows)
        took = time.perf_counter() - t0
        db.close()
        return took

    def ours(k: int) -> float:
        """The upload page's / API's / CLI's path: bytes -> parsed, validated, normalised rows."""
        project, _ = get_or_create_project(f"bench-{k}")
        t0 = time.perf_counter()
        imported = 0
        for i, c in enumerate(chunks):
            outcome = import_file(project, c, f"chunk{i}.jsonl", fmt="raw")
            assert outcome.imported == len(c.splitlines()) and not outcome.errors, outcome.errors[:3]
            imported += outcome.imported
        sqlite.wait_for_checkpoints()  # (the last file's WAL checkpoint counts too)
        took = time.perf_counter() - t0
        assert imported == N and Step.objects.filter(trajectory__project=project).count() == N * steps
        return took

    check_s = conservation_time(chunks[0])

    base_times, our_times = [], []
    for k in range(REPEATS):
        os.sync()  # (each side starts with no dirty pages of the other's waiting to be written back)
        base_times.append(baseline(k))
        os.sync()
        our_times.append(ours(k))
        print(f"  round {k + 1}: baseline {N / base_times[-1]:,.0f}/s, ours {N / our_times[-1]:,.0f}/s "
              f"(ratio {base_times[-1] / our_times[-1]:.2f})")
    base, mine = min(base_times), min(our_times)
    print(f"baseline (unparsed blob rows): best {N / base:,.0f} trajectories/s, "
          f"median {N / statistics.median(base_times):,.0f}")
    print(f"Trajectory Studio (parsed, validated, normalised, indexed): best {N / mine:,.0f} trajectories/s "
          f"({N * steps / mine:,.0f} steps/s), median {N / statistics.median(our_times):,.0f}")
    print(f"  {1e6 * mine / N:,.0f} us a trajectory from bytes to committed rows (ingest.writer.import_file, as the "
          f"upload page, the API and manage.py import_trajectories)")
    print(f"ratio ours / baseline: best {base / mine:.2f}, per round "
          + ", ".join(f"{b / o:.2f}" for b, o in zip(base_times, our_times))
          + f"  target: >= 10,000 trajectories/s -> {'MET' if N / mine >= 10000 else 'NOT MET'} (best), "
          f"{'MET' if N / statistics.median(our_times) >= 10000 else 'NOT MET'} (median)")
    print(f"  of which the conservation check (every input value found in the trajectory): "
          f"{1e6 * check_s:,.1f} us a trajectory, {100 * check_s / (mine / N):.1f} % of the import")
    print("load average (1, 5, 15 min) at the end: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
          + f" on {os.cpu_count()} CPUs (the baseline uses one; the import uses all)")


if __name__ == "__main__":
    main()
