"""The evaluation core stays pure: no Django, and no heavy ML import when it loads."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PURE = ["evaluation/parse.py", *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "evaluation" / "scoring").glob("*.py")),
        "evaluation/rewards.py"]
FORBIDDEN = ("django", "rest_framework", "celery")


def top_level_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", PURE)
def test_a_pure_module_imports_no_django(module):
    imported = top_level_imports(ROOT / module)
    assert not {name for name in imported if name.split(".")[0] in FORBIDDEN}


def test_loading_the_evaluation_core_pulls_in_neither_django_nor_torch():
    code = (
        "import sys, evaluation.parse, evaluation.scoring, evaluation.rewards\n"
        "print(sorted(m for m in ('django', 'torch', 'transformers', 'trl') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
