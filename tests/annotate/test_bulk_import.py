"""The fast SQLite import path writes exactly what the canonical documents hold."""

from __future__ import annotations

import json

import pytest
from django.db import transaction
from django.utils import timezone

from annotate import bulk
from annotate.demo import demo_trajectories
from annotate.models import Revision, StepLabel, Trajectory

pytestmark = pytest.mark.django_db


def insert(project, docs):
    with transaction.atomic():
        return bulk.insert_trajectories(project, docs, author_id=None, status="draft", now=timezone.now())


def test_bulk_inserted_trajectories_read_back_identical(project):
    docs = demo_trajectories()
    ids = insert(project, docs)
    assert len(ids) == len(docs)
    for pk, doc in zip(ids, docs):
        t = Trajectory.objects.get(pk=pk)
        back = t.to_canonical()
        assert back.turns == doc.turns
        assert back.tools == doc.tools and back.system == doc.system
        assert t.case_types == sorted(set(doc.meta.case_types)) and t.version == 1
        assert Revision.objects.get(trajectory=t, version=1).document == doc.to_dict()


def test_labels_and_findings_are_queryable_after_a_bulk_insert(project):
    ids = insert(project, demo_trajectories())
    labelled = Trajectory.objects.get(pk__in=ids, external_id="demo-needs-fixing")
    assert set(StepLabel.objects.filter(trajectory=labelled).values_list("label", flat=True)) == {
        "unexpected_arg", "missing_required_arg"}
    assert labelled.finding_count > 0
    assert Trajectory.objects.filter(pk__in=ids).with_case_type("clarification").count() == 1


def test_ids_are_never_reused_after_deletes(project):
    first = insert(project, demo_trajectories()[:3])
    Trajectory.objects.filter(pk__in=first).delete()
    second = insert(project, demo_trajectories()[:3])
    assert min(second) > max(first)
    # And the ORM keeps allocating above them.
    t = Trajectory.objects.create(project=project)
    assert t.pk > max(second)


@pytest.mark.parametrize("value", [
    {"b": 1, "a": [1, 2.5, None, True], "é": "ü\u2028", "n": {"x": ""}},  # key order, non-ASCII, null
    {"big": 2 ** 70, "neg": -2 ** 64},  # beyond 64 bits: orjson refuses, the standard encoder writes them
    {"x": float("nan"), "y": [float("inf"), None]},  # orjson would write null
    {1: "one", None: "none"},  # non-string keys (json.dumps turns them into strings)
    "\ud800",  # a lone surrogate
    [],
])
def test_dumps_writes_the_value_json_dumps_writes(value):
    import json

    expected = json.dumps(value, ensure_ascii=False)
    got = bulk.dumps(value)
    assert isinstance(got, str)
    if "NaN" in expected or "Infinity" in expected:
        assert got == expected
    else:
        assert json.loads(got) == json.loads(expected)
        assert list(json.loads(got)) == list(json.loads(expected))  # key order


def test_dumps_refuses_what_json_refuses():
    import datetime

    with pytest.raises(TypeError):
        bulk.dumps({"when": datetime.date(2024, 1, 1)})


# The second process (imports of PARALLEL_MIN+ trajectories) ------------------------------------

def _varied_docs():
    """Demo trajectories plus every field the rows carry set away from its default."""
    from annotate.trajectory import Trajectory as Doc

    docs = demo_trajectories()
    docs.append(Doc.from_dict({
        "system": "Be brief.", "tools": [{"name": "t", "parameters": {"type": "object", "properties": {
            "n": {"type": "integer"}}, "required": ["n"]}}],
        "turns": [{"user": "  first\nline  ", "steps": [
            {"kind": "think", "text": "", "note": "a note", "train": False, "labels": ["wrong_tool", "format_error"]},
            {"kind": "tool_call", "name": "t", "call_id": "c1", "arguments": {"n": "x", "é": [1, 2.5, None]}},
            {"kind": "tool_result", "name": "t", "call_id": "c1", "text": "Error: no", "ok": False},
            {"kind": "answer", "text": "done ü"}]}],
        "meta": {"external_id": "x1", "case_types": ["tool_failure", "tool_required"], "split": "eval",
                 "tags": ["b", "a"], "reference": {"gold": [1, {"k": None}]}, "extra": {"score": 0.25, "big": 2 ** 70}}}))
    return docs


def _rows(ids):
    """Every row written for trajectories ``ids``, with ids made relative to the first one."""
    from django.db import connection

    lo, hi = min(ids), max(ids)
    out = {}
    with connection.cursor() as c:
        for table, key in (("annotate_trajectory", "id"), ("annotate_turn", "trajectory_id"),
                           ("annotate_step", "trajectory_id"), ("annotate_steplabel", "trajectory_id"),
                           ("annotate_revision", "trajectory_id"), ("annotate_trajectory_search", "rowid")):
            c.execute(f"SELECT * FROM {table} WHERE {key} BETWEEN %s AND %s ORDER BY {key}, rowid", [lo, hi])
            names = [d[0] for d in c.description]
            rows = []
            for r in c.fetchall():
                r = dict(zip(names, r))
                for k in ("id", "trajectory_id", "step_id"):
                    r.pop(k, None)  # turn, step and label ids are allocated per table
                rows.append(r)
            out[table] = rows
        c.execute(f"SELECT rowid - %s, text FROM annotate_trajectory_search WHERE rowid BETWEEN %s AND %s "
                  "ORDER BY rowid", [lo, lo, hi])
        out["search"] = c.fetchall()
    return out


def test_rows_built_in_a_second_process_are_the_rows_built_here(project):
    from annotate.services import index_search_text

    docs = _varied_docs() * 15  # (batches of 60: several full multi-row INSERTs per table, and a rest)
    now = timezone.now()

    def write(parallel):
        with transaction.atomic():
            return bulk.insert_trajectories(project, docs, author_id=None, status="draft", now=now,
                                            index_search=index_search_text, parallel=parallel, batch=60)

    here, there = write(False), write(True)
    assert len(here) == len(there) == len(docs) and min(there) > max(here)
    assert _rows(here) == _rows(there)
    assert Revision.objects.get(trajectory_id=there[-1], version=1).document == docs[-1].to_dict()
    assert Trajectory.objects.get(pk=there[-1]).to_canonical() == docs[-1]


@pytest.mark.parametrize("parallel", [False, True])
def test_an_error_while_building_rows_writes_nothing(project, parallel):
    import datetime

    from annotate.trajectory import Trajectory as Doc

    docs = demo_trajectories() * 3
    bad = Doc.from_dict({"turns": [{"user": "u", "steps": [{"kind": "tool_call", "name": "x", "arguments": {}}]}]})
    bad.turns[0].steps[0].arguments = {"when": datetime.date(2024, 1, 1)}  # not JSON
    docs.insert(20, bad)
    before = Trajectory.objects.count()
    with pytest.raises(TypeError, match="not JSON serializable"):
        insert(project, docs) if not parallel else _insert_parallel(project, docs)
    assert Trajectory.objects.count() == before and not Revision.objects.filter(trajectory__project=project).exists()


def _insert_parallel(project, docs):
    with transaction.atomic():
        return bulk.insert_trajectories(project, docs, author_id=None, status="draft", now=timezone.now(),
                                        parallel=True, batch=5)


def _jsonl(n, bad_line=None):
    lines = [json.dumps({"turns": [{"user": f"question {i}", "steps": [
        {"kind": "tool_call", "name": "get_weather", "arguments": {"city": f"c{i}"}, "call_id": "c"},
        {"kind": "tool_result", "call_id": "c", "text": "18 C"}, {"kind": "answer", "text": f"answer {i}"}]}],
        "tools": [{"name": "get_weather", "parameters": {"type": "object", "properties": {
            "city": {"type": "string"}}, "required": ["city"]}}], "meta": {"external_id": f"r{i}"}})
        for i in range(n)]
    if bad_line is not None:
        lines[bad_line - 1] = lines[bad_line - 1].replace('"tool_result", "call_id": "c"', '"tool_result", "call_id": "zz"')
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def small_parallel_min(monkeypatch):
    """Imports of 50+ trajectories take the second process, 7 trajectories a batch; counts its uses."""
    if not bulk._can_fork():
        pytest.skip("needs fork and a second CPU")
    monkeypatch.setattr(bulk, "PARALLEL_MIN", 50)
    monkeypatch.setattr(bulk, "BATCH", 7)
    used = []
    enter = bulk._ForkedRows.__enter__
    monkeypatch.setattr(bulk._ForkedRows, "__enter__", lambda self: used.append(1) or enter(self))
    return used


def test_a_bad_line_late_in_a_big_file_still_aborts_everything_with_its_line(project, small_parallel_min):
    from annotate.importing import parse_file
    from annotate.services import import_parsed

    result = parse_file(_jsonl(120, bad_line=117), "big.jsonl")
    assert [str(e) for e in result.errors] == [
        "big.jsonl:117: turns[0].steps[1].call_id: orphan tool result: no earlier tool call has id 'zz'"]
    outcome = import_parsed(project, result, filename="big.jsonl", fmt="auto")
    assert outcome.imported == 0 and not Trajectory.objects.filter(project=project).exists()

    result = parse_file(_jsonl(120, bad_line=117), "big.jsonl", skip_invalid=True)
    outcome = import_parsed(project, result, filename="big.jsonl", fmt="auto")
    assert small_parallel_min  # the second process built the rows
    assert (outcome.imported, outcome.skipped) == (119, 1)
    assert Trajectory.objects.filter(project=project).count() == 119
    assert not Trajectory.objects.filter(project=project, external_id="r116").exists()


def test_a_big_import_reads_back_as_imported(project, small_parallel_min):
    from annotate.importing import parse_file
    from annotate.services import current_document, import_parsed

    result = parse_file(_jsonl(60), "big.jsonl")
    import_parsed(project, result, filename="big.jsonl", fmt="auto")
    assert small_parallel_min
    rows = Trajectory.objects.filter(project=project).order_by("id")
    assert [r.external_id for r in rows] == [f"r{i}" for i in range(60)]
    for row, (_, doc) in zip(rows, result.trajectories):
        assert row.to_canonical() == doc and current_document(row) == doc
    assert Trajectory.objects.filter(project=project).search("answer 59").get().external_id == "r59"


def test_a_process_running_other_threads_imports_without_forking():
    """A threaded web server must not fork mid-request: the child could wait forever on a lock."""
    import threading

    if not bulk._can_fork():
        pytest.skip("needs fork and a second CPU")
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert bulk._can_fork() is False
    finally:
        stop.set()
        other.join()
    assert bulk._can_fork() is True
