"""The fast SQLite import path writes exactly what the canonical documents hold."""

from __future__ import annotations

import json
import threading
import time

import pytest
from django.db import transaction
from django.utils import timezone

from annotate.demo import demo_trajectories
from annotate.ingest import sqlite as bulk
from annotate.ingest.jsontext import dumps
from annotate.models import Revision, StepLabel, Trajectory
from annotate.workbench.documents import document_at, history_of

pytestmark = pytest.mark.django_db


def insert(project, docs):
    with transaction.atomic():
        return bulk.insert_trajectories(project, docs, status="draft", now=timezone.now())


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
        assert not Revision.objects.filter(trajectory=t).exists()  # (written on its first change)
        assert document_at(t, 1) == doc and [r.summary for r in history_of(t)] == ["imported"]


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
    got = dumps(value)
    assert isinstance(got, str)
    if "NaN" in expected or "Infinity" in expected:
        assert got == expected
    else:
        assert json.loads(got) == json.loads(expected)
        assert list(json.loads(got)) == list(json.loads(expected))  # key order


def test_dumps_refuses_what_json_refuses():
    import datetime

    with pytest.raises(TypeError):
        dumps({"when": datetime.date(2024, 1, 1)})


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
                           ("annotate_step", "trajectory_id"), ("annotate_steplabel", "trajectory_id")):
            c.execute(f"SELECT * FROM {table} WHERE {key} BETWEEN %s AND %s ORDER BY {key}, rowid", [lo, hi])
            names = [d[0] for d in c.description]
            rows = []
            for r in c.fetchall():
                r = dict(zip(names, r))
                for k in ("id", "trajectory_id", "step_id"):
                    r.pop(k, None)  # turn, step and label ids are allocated per table
                rows.append(r)
            out[table] = rows
        # (the index keeps each entry's words, not its text: fts5vocab lists them by entry)
        c.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.search_words "
                  "USING fts5vocab(main, 'annotate_trajectory_search', 'instance')")
        c.execute("SELECT doc - %s, term FROM temp.search_words WHERE doc BETWEEN %s AND %s ORDER BY doc, term",
                  [lo, lo, hi])
        out["search"] = c.fetchall()
    assert out["search"], "no search entries for these trajectories"
    return out


def test_rows_built_in_a_second_process_are_the_rows_built_here(project):
    from annotate.ingest.writer import index_search_text

    docs = _varied_docs() * 15  # (batches of 60: several full multi-row INSERTs per table, and a rest)
    now = timezone.now()

    def write(parallel):
        with transaction.atomic():
            return bulk.insert_trajectories(project, docs, status="draft", now=now,
                                            index_search=index_search_text, parallel=parallel, batch=60)

    here, there = write(False), write(True)
    assert len(here) == len(there) == len(docs) and min(there) > max(here)
    assert _rows(here) == _rows(there)
    assert document_at(Trajectory.objects.get(pk=there[-1]), 1) == docs[-1]
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
    assert Trajectory.objects.count() == before


def _insert_parallel(project, docs):
    with transaction.atomic():
        return bulk.insert_trajectories(project, docs, status="draft", now=timezone.now(),
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
def forks(monkeypatch):
    """Files of 1 KB+ are imported while they are read, in batches of 7; lists of 50+ trajectories
    build their rows in a second process. Counts the processes forked."""
    if not bulk._can_fork():
        pytest.skip("needs fork and a second CPU")
    monkeypatch.setattr(bulk, "PARALLEL_MIN", 50)
    monkeypatch.setattr(bulk, "STREAM_MIN_BYTES", 1024)
    monkeypatch.setattr(bulk, "BATCH", 7)
    monkeypatch.setattr("annotate.ingest.reader.BATCH", 7)
    used = []
    enter = bulk._Forked.__enter__
    monkeypatch.setattr(bulk._Forked, "__enter__", lambda self: used.append(True) or enter(self))
    return used


def _import(project, data, name="big.jsonl", **kw):
    from annotate.ingest.writer import import_file

    return import_file(project, data, name, **kw)


def _labelled_jsonl(n):
    """JSON Lines with labels on the steps, tools of several names, and now and then two turns."""
    lines = []
    for i in range(n):
        steps = [{"kind": "think", "text": f"think {i}", "labels": ["wrong_tool"] if i % 3 == 0 else []},
                 {"kind": "tool_call", "name": f"tool_{i % 4}", "arguments": {"q": f"q{i}"}, "call_id": "c",
                  "labels": ["arg_value_error", "missing_required_arg"] if i % 5 == 0 else []},
                 {"kind": "tool_result", "call_id": "c", "text": f"r{i}"},
                 {"kind": "answer", "text": f"answer {i}", "note": "check" if i % 2 else ""}]
        turns = [{"user": f"question {i}", "steps": steps}]
        if i % 4 == 1:
            turns.append({"user": f"and then {i}?", "steps": [{"kind": "answer", "text": "no", "labels": ["x_label"]}]})
        lines.append(json.dumps({"turns": turns, "tools": [
            {"name": f"tool_{i % 4}", "description": f"from record {i}",
             "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}],
            "meta": {"external_id": f"r{i}", "tags": [f"t{i % 2}"]}}))
    return ("\n".join(lines) + "\n").encode()


def _project_rows(project):
    """_rows of the project's trajectories, without what differs between two imports (project, time)."""
    ids = list(Trajectory.objects.filter(project=project).order_by("id").values_list("id", flat=True))
    out = _rows(ids)
    for rows in out.values():
        for r in rows:
            if isinstance(r, dict):
                for k in ("project_id", "created_at", "updated_at"):
                    r.pop(k, None)
    return out


@pytest.mark.parametrize("readers", [0, 1, 2, 3])
def test_a_file_imported_while_read_gives_the_rows_of_a_file_read_first(project, forks, readers, monkeypatch):
    from annotate.models import Project, Tool

    data = _labelled_jsonl(40)
    other = Project.objects.create(slug="read-first", name="read first")
    monkeypatch.setattr(bulk, "STREAM_MIN_BYTES", 10 ** 9)
    _import(other, data)
    assert forks == []  # read whole, written in one process
    monkeypatch.setattr(bulk, "STREAM_MIN_BYTES", 1024)
    monkeypatch.setattr(bulk, "READERS", readers or 1)
    if not readers:
        monkeypatch.setattr(bulk, "_can_fork", lambda: False)
    outcome = _import(project, data)
    assert (outcome.imported, outcome.skipped, outcome.errors) == (40, 0, [])
    assert forks == ([] if not readers else [True] * readers)
    first, second = _project_rows(other), _project_rows(project)
    assert first and first == second
    for t in Trajectory.objects.filter(project=project):  # labels sit on the steps that carry them
        assert t.to_canonical() == Trajectory.objects.get(project=other, external_id=t.external_id).to_canonical()
    assert StepLabel.objects.filter(trajectory__project=project).count() == 40 // 3 + 1 + 2 * 8 + 10
    assert list(Tool.objects.filter(project=project).order_by("id").values_list("name", "description")) == [
        ("tool_0", "from record 0"), ("tool_1", "from record 1"), ("tool_2", "from record 2"),
        ("tool_3", "from record 3")]
    assert Trajectory.objects.filter(project=project).search("answer 39").get().external_id == "r39"


@pytest.mark.parametrize("readers", [1, 2])
def test_a_bad_line_late_in_a_big_file_still_aborts_everything_with_its_line(project, forks, readers, monkeypatch):
    from annotate.models import ImportBatch

    monkeypatch.setattr(bulk, "READERS", readers)
    data = _jsonl(120, bad_line=117).replace(b'{"turns": [{"user": "question 30"', b'{"turns": 3, "x": [{"user": "q"')
    outcome = _import(project, data)
    assert outcome.imported == 0 and not Trajectory.objects.filter(project=project).exists()
    assert [(e["line"], e["field"], e["message"]) for e in outcome.errors] == [
        (31, "turns", "must be a list, got a number"),
        (117, "turns[0].steps[1].call_id", "orphan tool result: no earlier tool call has id 'zz'")]
    assert ImportBatch.objects.get(project=project).skipped == 2

    outcome = _import(project, data, skip_invalid=True)
    assert forks == [True] * readers * 2  # the second process(es) built the rows
    assert (outcome.imported, outcome.skipped) == (118, 2)
    assert Trajectory.objects.filter(project=project).count() == 118
    assert not Trajectory.objects.filter(project=project, external_id__in=["r30", "r116"]).exists()
    assert Trajectory.objects.get(project=project, external_id="r119").to_canonical().turns[0].user == "question 119"


def test_a_json_array_is_read_by_one_reader_and_gives_the_same_trajectories(project, forks, monkeypatch):
    monkeypatch.setattr(bulk, "READERS", 2)
    lines = _labelled_jsonl(30).decode().splitlines()
    outcome = _import(project, ("[\n" + ",\n".join(lines) + "\n]").encode(), "big.json")
    assert outcome.imported == 30 and forks == [True]
    assert [t.external_id for t in Trajectory.objects.filter(project=project).order_by("id")] == [
        f"r{i}" for i in range(30)]


def test_a_file_that_cannot_be_read_writes_nothing_and_forks_nothing(project, forks):
    outcome = _import(project, b"\xff\xfe" + b"x" * 2000, "bad.jsonl")
    assert outcome.imported == 0 and forks == []
    assert outcome.errors[0]["message"].startswith("this is not a text file (looks like UTF-16 text")


def test_a_big_import_reads_back_as_imported(project, forks):
    from annotate.ingest.reader import parse_file
    from annotate.workbench.documents import current_document

    data = _jsonl(60)
    _import(project, data)
    assert forks == [True] * bulk._readers() and len(forks) == 2  # (two readers by default)
    rows = Trajectory.objects.filter(project=project).order_by("id")
    assert [r.external_id for r in rows] == [f"r{i}" for i in range(60)]
    for row, (_, doc) in zip(rows, parse_file(data, "big.jsonl").trajectories):
        assert row.to_canonical() == doc and current_document(row) == doc
    assert Trajectory.objects.filter(project=project).search("answer 59").get().external_id == "r59"


def test_a_big_list_builds_its_rows_in_a_second_process(project, forks):
    from annotate.ingest.writer import write_trajectories

    docs = _varied_docs() * 8
    ids = write_trajectories(project, docs, ids_only=True)
    assert forks == [True] and len(ids) == len(docs)
    assert [Trajectory.objects.get(pk=i).to_canonical() for i in ids] == docs


def test_a_checkpoint_after_a_big_write_runs_beside_it(tmp_path):
    """The WAL is folded into the database file by a background thread, not by the commit."""
    import sqlite3

    db = sqlite3.connect(tmp_path / "x.sqlite3", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t (x TEXT)")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with bulk.checkpoint_later(db):
        assert db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        db.execute("BEGIN")
        db.executemany("INSERT INTO t VALUES (?)", [("x" * 1000,)] * 5000)  # ~1,300 pages, over the 1,000 default
        db.execute("COMMIT")
    assert db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    bulk.wait_for_checkpoints()
    busy, frames, done = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert frames > 1000 and done == frames  # all there, and already copied by the thread
    assert sqlite3.connect(tmp_path / "x.sqlite3").execute("SELECT count(*) FROM t").fetchone() == (5000,)


def test_an_in_memory_database_is_left_alone():
    import sqlite3

    db = sqlite3.connect(":memory:")
    with bulk.checkpoint_later(db):
        pass
    assert bulk._checkpoints == [] or all(not t.is_alive() for t in bulk._checkpoints)


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


# Other databases (PostgreSQL) write through the ORM; both writers take their rows from ingest.rows ------

def _as_written(ids, leave_out=()):
    """The trajectory columns (but id, times and ``leave_out``) and the document of each of ``ids``."""
    columns = [f.attname for f in Trajectory._meta.concrete_fields
               if f.attname not in ("id", "created_at", "updated_at", *leave_out)]
    return [(Trajectory.objects.filter(pk=pk).values(*columns).get(), Trajectory.objects.get(pk=pk).to_canonical())
            for pk in ids]


def test_the_orm_writer_writes_what_the_sqlite_writer_writes(project, monkeypatch):
    from annotate.ingest.writer import write_trajectories

    docs = _varied_docs()
    fast = write_trajectories(project, docs, ids_only=True)
    monkeypatch.setattr(bulk, "available", lambda: False)
    orm = write_trajectories(project, docs, ids_only=True)
    assert min(orm) > max(fast)
    assert _as_written(orm) == _as_written(fast)
    assert [doc for _, doc in _as_written(orm)] == docs
    assert StepLabel.objects.filter(trajectory_id__in=orm).count() == StepLabel.objects.filter(
        trajectory_id__in=fast).count() > 0
    assert Trajectory.objects.filter(pk__in=orm).search("first line").get().external_id == "x1"


def test_an_import_through_the_orm_gives_the_trajectories_of_one_through_sqlite(project, monkeypatch):
    from annotate.formats import dump_jsonl, export_records
    from annotate.models import Project

    data = dump_jsonl(export_records(_varied_docs(), "raw")).encode()
    other = Project.objects.create(slug="through-the-orm", name="through the ORM")
    fast = _import(project, data, "a.jsonl")
    monkeypatch.setattr(bulk, "available", lambda: False)
    orm = _import(other, data, "a.jsonl")
    assert (orm.imported, orm.errors) == (fast.imported, fast.errors) == (len(_varied_docs()), [])
    def written(p):
        return _as_written(Trajectory.objects.filter(project=p).order_by("id").values_list("id", flat=True),
                           leave_out=("project_id",))

    assert written(other) == written(project)
    assert list(other.tools.order_by("id").values_list("name", "parameters")) == list(
        project.tools.order_by("id").values_list("name", "parameters"))
    bad = _import(other, b'{"turns": [{"user": "q", "steps": []}]}\n{"turns": 3}\n', "b.jsonl")
    assert bad.imported == 0 and [e["line"] for e in bad.errors] == [2]
    assert Trajectory.objects.filter(project=other).count() == len(_varied_docs())  # (all or nothing)


def _checkpoint_running(seconds: float):
    """A stand-in for the previous import's background checkpoint, busy for ``seconds``."""
    thread = threading.Thread(target=time.sleep, args=(seconds,), name="sqlite-checkpoint", daemon=True)
    thread.start()
    bulk._checkpoints.append(thread)
    return thread


@pytest.mark.parametrize("readers", [1, 2])
def test_the_next_files_readers_read_while_the_previous_checkpoint_runs(project, forks, readers, monkeypatch):
    from annotate.models import Project

    data = _labelled_jsonl(40)
    other = Project.objects.create(slug="read-first", name="read first")
    monkeypatch.setattr(bulk, "STREAM_MIN_BYTES", 10 ** 9)
    _import(other, data)
    monkeypatch.setattr(bulk, "STREAM_MIN_BYTES", 1024)
    monkeypatch.setattr(bulk, "READERS", readers)
    taken = []
    read_while = bulk.Stream.read_while

    def spy(self, busy):
        read_while(self, busy)
        taken.append((busy(), len(self._early)))

    monkeypatch.setattr(bulk.Stream, "read_while", spy)
    _checkpoint_running(1.0)
    started = time.monotonic()
    outcome = _import(project, data)
    assert time.monotonic() - started >= 0.9  # it waited for the checkpoint...
    assert (outcome.imported, outcome.errors) == (40, [])
    # ... and meanwhile took all the readers sent, the file's one batch (40 records) and each reader's
    # problems and end, before the checkpoint was done
    assert taken == [(True, 1 + 2 * readers)]
    first, second = _project_rows(other), _project_rows(project)
    assert first and first == second  # the same rows as a file read first, ids included (relative to the first)


def test_a_reader_that_fails_while_the_checkpoint_runs_fails_the_import_and_writes_nothing(project, forks, monkeypatch):
    monkeypatch.setattr(bulk, "READERS", 2)
    packed = bulk._packed

    def fail_on_record_14(tables, ids, rows):
        if 14 in ids:
            raise ValueError("the row builder broke")
        return packed(tables, ids, rows)

    monkeypatch.setattr(bulk, "_packed", fail_on_record_14)
    _checkpoint_running(0.5)
    with pytest.raises(ValueError, match="the row builder broke"):
        _import(project, _labelled_jsonl(40))
    assert not Trajectory.objects.filter(project=project).exists()


@pytest.mark.parametrize("readers", [1, 2])
def test_integers_beyond_64_bits_are_stored_with_every_digit_by_the_forked_readers(project, forks, readers,
                                                                                     monkeypatch):
    """The readers parse with orjson, which reads 2**64 as a float: what is stored must be the integer."""
    monkeypatch.setattr(bulk, "READERS", readers)
    big = [2**64, -2**63 - 1, 10**30]
    lines = [json.dumps({"turns": [{"user": f"q{i}", "steps": [
        {"kind": "tool_call", "name": "f", "arguments": {"n": big[i % 3]}, "call_id": "c"},
        {"kind": "tool_result", "call_id": "c", "text": "ok"}, {"kind": "answer", "text": "done"}]}],
        "big": big[(i + 1) % 3], "meta": {"external_id": f"r{i}"}}) for i in range(30)]
    outcome = _import(project, ("\n".join(lines) + "\n").encode())
    assert (outcome.imported, outcome.errors) == (30, [])
    assert forks == [True] * readers
    for t in Trajectory.objects.filter(project=project):
        i = int(t.external_id[1:])
        doc = t.to_canonical()
        assert doc.turns[0].steps[0].arguments == {"n": big[i % 3]}
        assert type(doc.turns[0].steps[0].arguments["n"]) is int and doc.meta.extra == {"big": big[(i + 1) % 3]}
