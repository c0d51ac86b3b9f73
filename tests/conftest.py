"""Shared fixtures: the tiny model, the shared third-party data, users with each role."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = (ROOT / ".." / "shared").resolve()
FIXTURES = SHARED / "fixtures"
TOKENIZERS = SHARED / "tokenizers"

# Built once per machine and reused across runs and xdist workers (the builder is deterministic
# and skips work when the folder is complete).
TINY_MODEL_CACHE = Path(os.environ.get("STUDIO_TEST_CACHE", ROOT / "var" / "test-cache")) / "tiny-qwen3"


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test with a clear message where it is absent."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"needs the shared third-party data at {p} (absent in this checkout)")
    return p


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    from filelock import FileLock

    from training.tiny_model import build_tiny_model

    TINY_MODEL_CACHE.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(TINY_MODEL_CACHE) + ".lock"):
        return build_tiny_model(TINY_MODEL_CACHE)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)
