"""Every benchmark runs in smoke mode, so one that crashes fails the suite instead of rotting.

Each ``bench/bench_*.py`` is run as the README says (a subprocess, ``--smoke``: a size that takes
seconds, on a throwaway data dir), and must exit 0 and print its ratio line: the figure it exists
to show, measured against its baseline. The figures themselves stay out of tests (a smoke size
means nothing, and the machine is shared); only that the whole benchmark ran to its end.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import MODEL_ROOTS_ENV, TINY_MODEL_CACHE, shared_path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"

# bench file -> (extra arguments: the tiny model the suite builds; the ratio line it must print).
# Marked slow where the smoke run still trains or generates with the tiny model.
BENCHMARKS = {
    "bench_import.py": ([], r"ratio ours / baseline: best [\d.]+"),
    "bench_workbench.py": ([], r"all filters together .*\(\s*[\d.]+x baseline\)"),
    "bench_render.py": (["--tokenizer", str(TINY_MODEL_CACHE)], r"ours / TRL: [\d.]+x"),
    "bench_export.py": ([], r"incremental re-export vs full export: [\d.]+x faster"),
    "bench_pairs.py": ([], r"\(= [\d.]+× a save"),
    "bench_scoring.py": ([], r"ratio to json\.loads: [\d,.]+x"),
    "bench_generation.py": (["--model", str(TINY_MODEL_CACHE)], r"RATIO batched vs one by one: [\d.]+x"),
    "bench_training.py": ([], r"ratio app/plain\s*: best\s+[\d.]+"),
    "bench_grpo.py": ([], r"ratio app/plain: [\d.]+ \(target >= 0.95\)"),
}
SLOW = {"bench_generation.py", "bench_training.py", "bench_grpo.py"}
# bench file -> the shared third-party data it reads (the test skips, naming it, where it is absent).
NEEDS_SHARED = {"bench_render.py": ("fixtures", "tau_bench")}


@pytest.mark.postgres
def test_the_workbench_benchmark_runs_on_a_postgresql_it_starts(tmp_path):
    """``--database postgres``: initdb, COPY of the rows, indexes built again, the same figures."""
    import glob

    if not glob.glob("/usr/lib/postgresql/*/bin"):
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql); `make test` installs it")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in ("STUDIO_DATA_DIR", "DJANGO_SETTINGS_MODULE", "DATABASE_URL", "BENCH_DATA_DIR"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, str(BENCH / "bench_workbench.py"), "--smoke", "--database", "postgres"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert "300 trajectories, 3,000 steps; PostgreSQL" in done.stdout
    assert re.search(BENCHMARKS["bench_workbench.py"][1], done.stdout), done.stdout[-3000:]


def test_every_benchmark_is_run_in_smoke_mode():
    assert {p.name for p in BENCH.glob("bench_*.py")} == set(BENCHMARKS)


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.slow] if n in SLOW else [])
                                  for n in sorted(BENCHMARKS)])
def test_benchmark_runs_to_its_ratio_line_in_smoke_mode(name, tmp_path, tiny_model_dir):
    extra, ratio_line = BENCHMARKS[name]
    if name in NEEDS_SHARED:
        shared_path(*NEEDS_SHARED[name])
    env = {**os.environ, "BENCH_DATA_DIR": str(tmp_path / "data"), "STUDIO_TEST_CACHE": str(TINY_MODEL_CACHE.parent),
           "STUDIO_MODEL_ROOTS": MODEL_ROOTS_ENV,
           "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}
    env.pop("STUDIO_DATA_DIR", None)
    env.pop("DJANGO_SETTINGS_MODULE", None)  # each bench sets up its own (throwaway) Django
    done = subprocess.run([sys.executable, str(BENCH / name), "--smoke", *extra], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert re.search(ratio_line, done.stdout), f"{name} printed no ratio line:\n{done.stdout[-3000:]}"
