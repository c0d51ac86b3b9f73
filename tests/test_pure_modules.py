"""The pure core imports no Django, directly or through another project module.

Read with ``ast`` (nothing is imported), including imports inside functions, and followed into
the project modules a pure module imports.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("django", "rest_framework")
PURE_PATTERNS = [
    "annotate/trajectory.py", "annotate/findings.py", "annotate/formats/*.py", "annotate/ingest/reader.py",
    "annotate/case_types.py", *(f"annotate/pairs/{m}.py" for m in ("__init__", "core", "starters", "corrections", "candidates", "records", "audit")),
    "annotate/demo.py", "annotate/workbench/editing.py",
    "annotate/workbench/revisions.py", "annotate/workbench/step_forms.py", "annotate/workbench/argument_form.py",
    "annotate/search.py", "annotate/ingest/jsontext.py", "annotate/ingest/rows.py", "annotate/workbench/workflow.py",
    "training/runner.py", "jobs/runner_io.py", "jobs/processes.py", "studio/charts.py", "training/packing.py",
    "training/callbacks.py", "training/export/*.py", "training/preview.py", "evaluation/items.py", "training/distributed.py",
    "evaluation/generate.py", "evaluation/runner.py", "training/paths.py", "studio/broker_fixes.py",
    "training/render*.py", "training/masks.py", "training/split*.py", "training/audit.py",
    "evaluation/outbound.py", "evaluation/bfcl_package.py", "evaluation/environments/*.py", "evaluation/multiturn.py",
    "training/chat_templates.py", "training/parse*.py", "training/scoring.py", "training/rewards.py",
    "evaluation/render*.py", "evaluation/parse*.py", "evaluation/scoring/*.py", "evaluation/rewards.py",
    "annotate/formats/*.py",
    "studio/secret_key.py",  # settings.py calls it before Django is set up
    "core/*.py",
]
PURE = sorted({p.relative_to(ROOT).as_posix() for pattern in PURE_PATTERNS for p in ROOT.glob(pattern)})
PACKAGES = ("annotate", "training", "evaluation", "studio", "core", "jobs")


def imports_of(path: Path) -> set[str]:
    """Every module name an ``import`` anywhere in the file names (relative imports resolved)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(p for p in [*parent, base] if p)
            names.add(base)
            names |= {f"{base}.{a.name}" for a in node.names}  # ``from pkg import module``
    return names


def module_file(name: str) -> Path | None:
    """The project file a module name refers to, if it is one of ours."""
    if name.split(".")[0] not in PACKAGES:
        return None
    for candidate in (ROOT / (name.replace(".", "/") + ".py"), ROOT / name.replace(".", "/") / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def forbidden_chain(path: Path) -> list[str] | None:
    """The import chain from ``path`` to Django / DRF, or None when there is none."""
    seen: set[Path] = set()
    stack: list[tuple[Path, list[str]]] = [(path, [path.relative_to(ROOT).as_posix()])]
    while stack:
        current, chain = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        for name in sorted(imports_of(current)):
            if name.split(".")[0] in FORBIDDEN:
                return [*chain, name]
            target = module_file(name)
            if target is not None:
                stack.append((target, [*chain, name]))
    return None


def test_the_pure_modules_are_found():
    assert {"annotate/trajectory.py", "annotate/findings.py", "annotate/ingest/reader.py", "annotate/case_types.py",
            "annotate/formats/raw.py", "annotate/formats/messages.py", "annotate/formats/__init__.py",
            "annotate/formats/common.py"} <= set(PURE)


@pytest.mark.parametrize("module", PURE)
def test_a_pure_module_reaches_no_django(module):
    chain = forbidden_chain(ROOT / module)
    assert chain is None, " -> ".join(chain or [])


def test_the_check_catches_django_imported_inside_a_function_and_through_another_module(tmp_path, monkeypatch):
    pkg = tmp_path / "annotate"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "pure.py").write_text("from annotate import helper\n")
    (pkg / "helper.py").write_text("def f():\n    from django.db import models\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert forbidden_chain(pkg / "pure.py") == ["annotate/pure.py", "annotate.helper", "django.db"]
