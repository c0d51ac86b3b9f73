"""The demo is ready for GRPO out of the box: ``seed_demo`` (with its tiny model) exports a prompt
snapshot, and a GRPO launch with the defaults (the demo's environment, ``TravelTools``) passes
every check on it."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from rl import launch, runner

pytestmark = pytest.mark.slow  # builds the tiny model and renders the demo


def test_seed_demo_gives_a_prompt_snapshot_that_a_default_grpo_launch_accepts(db, settings, tmp_path):
    from annotate.models import Project

    settings.DATA_DIR = tmp_path
    settings.DEMO_MODEL_DIR = tmp_path / "models" / "tiny-qwen3"
    settings.SNAPSHOT_DIR = tmp_path / "snapshots"
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    project = Project.objects.get(slug="demo")
    snapshot = project.snapshots.get(kind="prompt")
    assert snapshot.status == "succeeded" and snapshot.item_count > 0, out.getvalue()
    assert launch.grpo_errors(project, snapshot, str(settings.DEMO_MODEL_DIR), runner.GRPOSettings()) == {}
    call_command("seed_demo", stdout=io.StringIO())  # safe to run again: still one prompt snapshot
    assert project.snapshots.filter(kind="prompt").count() == 1
