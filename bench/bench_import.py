"""Import benchmark: 100k generated trajectories of ~10 steps (~2 KB each) into SQLite.

Prints trajectories/s for the full path (bytes → parse → convert → validate → bulk insert of
trajectories, turns, steps, labels and first revisions) against a baseline measured in the same
run: storing each record unparsed as one JSON blob row (what a generic labelling tool does with
an unstructured task). Target ≥ 5,000 trajectories/s.

    python bench/bench_import.py [N]
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import sys
import time

from _django import setup

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
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


def main() -> None:
    data = setup("import")
    from annotate.services import get_or_create_project, import_file

    rng = random.Random(0)
    chunks = []
    for start in range(0, N, CHUNK):
        lines = [json.dumps(record(i, rng)) for i in range(start, min(N, start + CHUNK))]
        chunks.append(("\n".join(lines) + "\n").encode())
    total_bytes = sum(len(c) for c in chunks)
    steps = sum(len(t["steps"]) for t in record(0, random.Random(0))["turns"])
    print(f"{N:,} trajectories, {steps} steps each, {total_bytes / N:,.0f} bytes each on average")

    # Baseline: one unparsed JSON blob row per record (plus json.loads to split lines), same SQLite settings.
    db = sqlite3.connect(data / "baseline.sqlite3")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE task (id INTEGER PRIMARY KEY, data TEXT NOT NULL)")
    t0 = time.perf_counter()
    for c in chunks:
        rows = [(json.dumps(json.loads(line)),) for line in c.decode().splitlines() if line]
        with db:
            db.executemany("INSERT INTO task (data) VALUES (?)", rows)
    base = time.perf_counter() - t0

    project, _ = get_or_create_project("bench")
    t0 = time.perf_counter()
    imported = 0
    for k, c in enumerate(chunks):
        outcome = import_file(project, c, f"chunk{k}.jsonl", fmt="raw")
        assert outcome.imported == len(c.splitlines()) and not outcome.errors, outcome.errors[:3]
        imported += outcome.imported
    ours = time.perf_counter() - t0
    from annotate.models import Step

    assert imported == N and Step.objects.count() == N * steps
    print(f"baseline (unparsed blob rows): {N / base:,.0f} trajectories/s")
    print(f"Trajectory Studio (parsed, validated, normalised, revisioned): {N / ours:,.0f} trajectories/s "
          f"({N * steps / ours:,.0f} steps/s)")
    print(f"  {1e6 * ours / N:,.0f} us a trajectory from bytes to committed rows (services.import_file, as the "
          f"upload page, the API and manage.py import_trajectories)")
    print(f"ratio ours / baseline: {base / ours:.2f}  target: >= 5,000 trajectories/s -> "
          f"{'MET' if N / ours >= 5000 else 'NOT MET'}")
    print("load average (1, 5, 15 min) at the end: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
          + f" on {os.cpu_count()} CPUs (the baseline uses one; the import uses a second one where it can)")


if __name__ == "__main__":
    main()
