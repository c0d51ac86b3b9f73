"""Shared helpers for the snapshot and export tests (not a test module)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from annotate.demo import demo_trajectories
from annotate.trajectory import Trajectory


def approve_all(project) -> None:
    project.trajectories.update(status="approved")


def render_settings(tokenizer_dir: Path, **over) -> dict:
    d = {"template": "qwen3_training", "tokenizer": str(tokenizer_dir)}
    d.update(over)
    return d


def demo_docs(n: int | None = None) -> list[dict]:
    """The demo trajectories as canonical documents (every case type)."""
    docs = [t.to_dict() for t in demo_trajectories()]
    return docs[:n] if n else docs


def edited(doc: dict, text: str) -> Trajectory:
    """A copy of ``doc`` whose last answer says ``text``."""
    d = copy.deepcopy(doc)
    for turn in reversed(d["turns"]):
        for step in reversed(turn["steps"]):
            if step["kind"] == "answer":
                step["text"] = text
                return Trajectory.from_dict(d)
    raise ValueError("no answer to edit")


@pytest.fixture
def fast_passwords(settings):
    """Users are created per test; the default password hasher costs ~1 s each on a small machine."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
