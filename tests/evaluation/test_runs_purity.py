"""The evaluation-run core stays pure: items, generation and the runner import no Django, and an
endpoint run's process never loads torch (it starts in a fraction of a second)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.evaluation.test_eval_purity import FORBIDDEN, ROOT, top_level_imports

PURE = ["evaluation/items.py", "evaluation/generate.py", "evaluation/runner.py"]


@pytest.mark.parametrize("module", PURE)
def test_a_run_module_imports_no_django(module):
    imported = top_level_imports(ROOT / module)
    assert not {name for name in imported if name.split(".")[0] in FORBIDDEN}


def test_loading_the_runner_pulls_in_neither_django_nor_torch():
    code = ("import sys, evaluation.runner, evaluation.generate, evaluation.items\n"
            "print(sorted(m for m in ('django', 'torch', 'transformers', 'trl') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
