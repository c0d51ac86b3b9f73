"""The import / export commands, on our own records and on every shared fixture."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from annotate.findings import validate
from annotate.models import Project, Trajectory
from annotate.trajectory import normalize_tool
from tests.conftest import FIXTURES, shared_path

pytestmark = pytest.mark.django_db

RAW = [
    {"system": "s", "turns": [{"user": "weather in Paris?", "assistant_think": "use the tool",
                               "assistant_tool": [{"name": "get_weather", "arguments": {"city": "Paris"}},
                                                  {"name": "get_weather", "arguments": {"city": "Rome"}}],
                               "tool_result": ["18C", "25C"], "assistant_answer": "Paris 18, Rome 25."}]},
    {"turns": [{"user": "hello", "assistant_answer": "Hi!"}]},
]


def write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_import_creates_the_project_with_the_default_taxonomy(tmp_path, capsys):
    call_command("import_trajectories", str(write_jsonl(tmp_path / "a.jsonl", RAW)), project="new-one")
    p = Project.objects.get(slug="new-one")
    assert "format_error" in p.label_names() and len(p.label_names()) == 17
    assert p.trajectories.count() == 2
    assert "Imported 2 trajectories" in capsys.readouterr().out


def test_a_bad_record_fails_the_whole_file_naming_line_and_field(tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(RAW[0]) + "\n" + json.dumps({"turns": [{"user": 5}]}) + "\n")
    with pytest.raises(CommandError, match="nothing imported"):
        call_command("import_trajectories", str(path), project="p")
    err = capsys.readouterr().err
    assert "bad.jsonl:2" in err and "user" in err
    assert Trajectory.objects.count() == 0


def test_skip_invalid_imports_the_rest(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(RAW[0]) + "\n{oops\n" + json.dumps(RAW[1]) + "\n")
    call_command("import_trajectories", str(path), project="p", skip_invalid=True)
    assert Trajectory.objects.count() == 2


def test_non_utf8_bytes_are_reported_not_crashed_on(tmp_path, capsys):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps(RAW[1]).encode() + b"\n" + '{"turns": [{"user": "café"}]}'.encode("latin-1") + b"\n")
    with pytest.raises(CommandError):
        call_command("import_trajectories", str(path), project="p")
    assert "latin1.jsonl" in capsys.readouterr().err
    assert Trajectory.objects.count() == 0


def test_an_unknown_format_is_refused():
    with pytest.raises(CommandError):
        call_command("import_trajectories", "x.jsonl", project="p", format="nope")


def test_export_then_import_gives_identical_trajectories(tmp_path):
    call_command("import_trajectories", str(write_jsonl(tmp_path / "a.jsonl", RAW)), project="src")
    for fmt in ("raw", "messages"):
        out = tmp_path / f"out.{fmt}.jsonl"
        call_command("export_trajectories", str(out), project="src", format=fmt)
        call_command("import_trajectories", str(out), project=f"copy-{fmt}", format=fmt)
        src = [t.to_canonical() for t in Project.objects.get(slug="src").trajectories.order_by("id")]
        copy = [t.to_canonical() for t in Project.objects.get(slug=f"copy-{fmt}").trajectories.order_by("id")]
        assert [c.turns for c in copy] == [s.turns for s in src]
        assert [c.tools for c in copy] == [s.tools for s in src]


def count_records(path: Path) -> int:
    text = path.read_text()
    if text.lstrip().startswith("["):
        return len(json.loads(text))
    return sum(1 for line in text.splitlines() if line.strip())


FIXTURE_FILES = [
    # (file, format, answers file)
    ("bfcl/BFCL_v4_simple_python.json", "bfcl", "bfcl/possible_answer/BFCL_v4_simple_python.json"),
    ("bfcl/BFCL_v4_multiple.json", "bfcl", "bfcl/possible_answer/BFCL_v4_multiple.json"),
    ("bfcl/BFCL_v4_irrelevance.json", "bfcl", None),
    ("tau_bench/gpt-4o-airline_trial0.json", "tau_bench", "tools:tau_bench/airline_tools.json"),
    ("toolrl/rlla_sft_first200.json", "toolrl", None),
    ("hermes_fc/few_shot.json", "toolrl", None),
    ("adp/toucan_1_5m/sample_raw.json", "messages", None),
    ("adp/orca_agentinstruct/sample_raw.json", "messages", None),
]


@pytest.mark.parametrize("name,fmt,answers", FIXTURE_FILES, ids=[f[0] for f in FIXTURE_FILES])
def test_every_fixture_record_imports_through_the_cli(name, fmt, answers, tmp_path):
    path = shared_path("fixtures", name)
    kwargs = {}
    if answers and answers.startswith("tools:"):
        kwargs["tools"] = str(FIXTURES / answers.removeprefix("tools:"))
    elif answers:
        kwargs["answers"] = str(FIXTURES / answers)
    call_command("import_trajectories", str(path), project="fx", format=fmt, **kwargs)
    project = Project.objects.get(slug="fx")
    assert project.trajectories.count() == count_records(path)
    if "answers" in kwargs:
        assert not project.trajectories.filter(reference__isnull=True).exists()
    if "tools" in kwargs:  # every call of every trajectory names a tool from the given file
        names = {normalize_tool(t)["name"] for t in json.loads(Path(kwargs["tools"]).read_text())}
        assert set(project.tools.values_list("name", flat=True)) == names
        assert not any(f.code == "unknown_tool" for t in project.trajectories.all() for f in validate(t.to_canonical()))
    # And they round-trip to messages with tool names, arguments and results intact.
    out = tmp_path / "m.jsonl"
    call_command("export_trajectories", str(out), project="fx", format="messages")
    call_command("import_trajectories", str(out), project="fx-copy", format="messages")
    src = [t.to_canonical() for t in project.trajectories.order_by("id")]
    copy = [t.to_canonical() for t in Project.objects.get(slug="fx-copy").trajectories.order_by("id")]

    def calls(doc):
        return [(s.kind, s.name, json.dumps(s.arguments, sort_keys=True), s.text if s.kind == "tool_result" else "")
                for _, _, s in doc.steps() if s.kind in ("tool_call", "tool_result")]

    assert [calls(c) for c in copy] == [calls(s) for s in src]
