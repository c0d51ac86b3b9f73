"""BFCL's own AST checker, loaded from the unpacked ``bfcl-eval`` wheel for tests (never installed).

``bfcl_eval.eval_checker.ast_eval.ast_checker`` imports ``bfcl_eval.constants.model_config`` only to
ask whether a model's handler turns ``.`` in function names into ``_``; that module imports every
model handler (openai, anthropic, torch …), so it alone is replaced by a stub that answers "no".
Everything else is BFCL's code as shipped.
"""

from __future__ import annotations

import sys
import types
from collections import defaultdict
from pathlib import Path

import pytest

from evaluation import bfcl_package

BFCL_FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "bfcl"
MODEL_NAME = "studio-agreement-test"


def load_checker():
    """BFCL's ``ast_checker`` module and its ``Language`` enum (skips where the wheel is not unpacked)."""
    if not bfcl_package.available():
        pytest.skip(f"bfcl-eval is not unpacked in {bfcl_package.folder()} (python -m evaluation.bfcl_package)")
    bfcl_package.importable()
    name = "bfcl_eval.constants.model_config"
    if name not in sys.modules:
        stub = types.ModuleType(name)
        stub.MODEL_CONFIG_MAPPING = defaultdict(lambda: types.SimpleNamespace(underscore_to_dot=False))
        sys.modules[name] = stub
    from bfcl_eval.constants.enums import Language
    from bfcl_eval.eval_checker.ast_eval import ast_checker

    return ast_checker, Language


def bfcl_verdict(checker, language, category: str, item: dict, answer: dict | None, calls: list[tuple[str, dict]]) -> bool:
    """BFCL's verdict on a model output already decoded into ``[(name, arguments)]``, as its runner
    gives it: irrelevance items pass when no call was made; the others go through ``ast_checker``."""
    if answer is None:
        return not calls
    decoded = [{name: args} for name, args in calls]
    result = checker.ast_checker(item["function"], decoded, answer["ground_truth"], language.PYTHON, category, MODEL_NAME)
    return bool(result["valid"])
