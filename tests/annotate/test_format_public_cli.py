"""The public tool-use data sets import through ``import_trajectories`` as they are: detected, counted,
with their gold and tool files."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from annotate.formats import bfcl_multi_turn
from annotate.ingest.reader import parse_file
from annotate.models import Project
from tests.annotate.format_checks import FIXTURES, records

pytestmark = pytest.mark.django_db

FILES = [
    # (file, answers file, detected format)
    ("bfcl_multi_turn/BFCL_v4_multi_turn_miss_func.json", "bfcl_multi_turn/possible_answer/BFCL_v4_multi_turn_miss_func.json",
     "bfcl_multi_turn"),
    ("xlam/xlam_function_calling_60k_sample.json", None, "xlam"),
    ("glaive/glaive-function-calling-v2_sample.json", None, "glaive"),
    ("toolace/ToolACE_data_sample.json", None, "toolace"),
]


@pytest.mark.parametrize("name, answers, fmt", FILES, ids=[f[2] for f in FILES])
def test_each_public_sample_imports_by_detection_through_the_cli(name, answers, fmt, tmp_path, capsys):
    path = FIXTURES / name
    kwargs = {"answers": str(FIXTURES / answers)} if answers else {}
    if fmt == "bfcl_multi_turn":
        tools = tmp_path / "tools.json"
        tools.write_text(json.dumps(bfcl_multi_turn.func_doc_tools(FIXTURES / "bfcl_multi_turn/multi_turn_func_doc")))
        kwargs["tools"] = str(tools)
    call_command("import_trajectories", str(path), project="pub", **kwargs)
    assert f"Imported {len(records(path))} trajectories" in capsys.readouterr().out
    project = Project.objects.get(slug="pub")
    assert project.trajectories.count() == len(records(path))
    expected = parse_file(path.read_bytes(), path.name, answers=(FIXTURES / answers).read_bytes() if answers else None)
    stored = [t.to_canonical() for t in project.trajectories.order_by("id")]
    assert [[(turn.user, [s.kind for s in turn.steps]) for turn in t.turns] for t in stored] == [
        [(turn.user, [s.kind for s in turn.steps]) for turn in t.turns] for _, t in expected.trajectories]
    assert [t.meta.reference for t in stored] == [t.meta.reference for _, t in expected.trajectories]
    assert {t.meta.source for t in stored} == {f"{fmt}:{path.name}"}  # detected, not told
    assert [t.meta.external_id for t in stored] == [t.meta.external_id for _, t in expected.trajectories]
