"""The layering, checked rather than hoped for: the import-linter contracts in ``.importlinter``.

- the data flows one way: annotate -> training -> evaluation, on ``jobs`` and ``core``;
- ``core`` and studio's shared helpers import no app;
- the pure modules reach no Django, directly, inside a function, or through another module.

The list of pure modules is the contract's: a module whose docstring's first line says "(pure"
("(pure)", "(pure; ...)") must be in it, and everything in it must exist. The contracts are shown to fail on a reversed
import and on Django reached through another module, on a copy of the code.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from importlinter import api

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / ".importlinter"
PACKAGES = ("core", "jobs", "studio", "annotate", "training", "evaluation", "rl")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--config", str(root / ".importlinter"), "--no-cache", "--no-logo"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=120)


def copy_of_the_code(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=lambda folder, names: [n for n in names if n == "__pycache__" or
                                                      (not n.endswith(".py") and "." in n)])
    shutil.copy(CONFIG, tmp_path / ".importlinter")
    return tmp_path


def pure_contract() -> dict:
    contracts = api.read_configuration(str(CONFIG))["contracts_options"]
    return next(c for c in contracts if c["id"] == "pure")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py")
                  if "migrations" not in p.parts)


def in_pure_contract(name: str) -> bool:
    for listed in pure_contract()["source_modules"]:
        if listed == name or (listed.endswith(".**") and name.startswith(listed[:-3] + ".")):
            return True
    return False


def test_the_contracts_are_kept():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_reversed_import_breaks_the_flow(tmp_path):
    root = copy_of_the_code(tmp_path)
    (root / "annotate" / "probe.py").write_text("def f():\n    from evaluation import scoring\n")
    result = lint(root)
    assert result.returncode == 1
    assert "annotate is not allowed to import evaluation" in result.stdout
    assert "annotate.probe -> evaluation.scoring" in result.stdout


def test_django_reached_through_another_module_breaks_the_pure_contract(tmp_path):
    root = copy_of_the_code(tmp_path)
    helper = root / "annotate" / "formats" / "common.py"
    helper.write_text(helper.read_text() + "\n\ndef _probe():\n    from annotate import models\n")
    result = lint(root)
    assert result.returncode == 1
    assert "The pure core imports no Django, directly or through another module BROKEN" in result.stdout
    assert "annotate.models -> django" in result.stdout


def test_every_module_the_pure_contract_names_exists():
    names = {module_name(p) for p in project_modules()}
    listed = [m[:-3] if m.endswith(".**") else m for m in pure_contract()["source_modules"]]
    assert [m for m in listed if m not in names] == []


def test_a_module_that_says_it_is_pure_is_checked_as_pure():
    claims = []
    for path in project_modules():
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        if re.search(r"\(pure(?:[;:)]| data\))", doc.split("\n", 1)[0]):
            claims.append(module_name(path))
    assert len(claims) > 40  # the check reads the docstrings it should
    assert [m for m in claims if not in_pure_contract(m)] == []
