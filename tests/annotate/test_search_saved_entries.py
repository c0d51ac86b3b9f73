"""The search finds each trajectory by its current words only, across imports, saves and deletes.

SQLite's index keeps tokens without texts (migration 0017), so a save cannot delete the old entry:
it writes a new one that becomes current. These tests look at what a user searching the queue
would see: the old words stop matching at once, the new ones match, and nothing of a deleted
trajectory matches a trajectory imported after it.
"""

from __future__ import annotations

import json

import pytest

from annotate.ingest.writer import get_or_create_project, import_file
from annotate.models import Trajectory
from annotate.workbench.documents import replace_document

pytestmark = pytest.mark.django_db(transaction=True)


def _record(i: int, word: str) -> dict:
    return {"turns": [{"user": f"request {i}", "steps": [
        {"kind": "tool_call", "name": "lookup", "arguments": {"q": word}, "call_id": "c"},
        {"kind": "tool_result", "call_id": "c", "text": "found"},
        {"kind": "answer", "text": f"the answer is {word}"}]}], "meta": {"external_id": f"r{i}"}}


def _import(project, words: list[str], start: int = 0) -> list[Trajectory]:
    data = "\n".join(json.dumps(_record(start + i, w)) for i, w in enumerate(words)).encode()
    outcome = import_file(project, data, "words.jsonl", fmt="raw")
    assert outcome.imported == len(words), outcome.errors
    return list(Trajectory.objects.filter(project=project, external_id__in=[f"r{start + i}" for i in range(len(words))])
                .order_by("id"))


def _found(project, query: str) -> list[str]:
    return sorted(Trajectory.objects.filter(project=project).search(query).values_list("external_id", flat=True))


def _save_with_word(t: Trajectory, old: str, new: str) -> None:
    doc = t.to_canonical()
    answer = doc.turns[0].steps[2]
    assert old in answer.text
    answer.text = answer.text.replace(old, new)
    doc.turns[0].steps[0].arguments = {"q": new}
    t.refresh_from_db()
    replace_document(t, doc, user=None, base_version=t.version)


def test_saves_replace_a_trajectorys_words_and_deletes_remove_them():
    project, _ = get_or_create_project("search-saved")
    first, second = _import(project, ["alpha", "beta"])
    assert _found(project, "alpha") == ["r0"] and _found(project, "beta") == ["r1"]

    _save_with_word(first, "alpha", "gamma")
    assert _found(project, "alpha") == [] and _found(project, "gamma") == ["r0"]
    _save_with_word(first, "gamma", "delta")  # a second save supersedes the first save's entry
    assert _found(project, "gamma") == [] and _found(project, "delta") == ["r0"]
    assert _found(project, "request") == ["r0", "r1"]  # one match per trajectory, however often saved
    assert _found(project, "beta") == ["r1"]  # the other trajectory is untouched

    first.delete()
    assert _found(project, "delta") == [] and _found(project, "request") == ["r1"]

    # Trajectories imported after the delete have new ids: no entry of the deleted one matches them.
    (third,) = _import(project, ["epsilon"], start=5)
    assert _found(project, "delta") == [] and _found(project, "alpha") == []
    assert _found(project, "epsilon") == ["r5"]
    _save_with_word(third, "epsilon", "zeta")
    assert _found(project, "epsilon") == [] and _found(project, "zeta") == ["r5"]


def _entries() -> list[int]:
    """The index's entries (rowids), as fts5vocab lists them."""
    from django.db import connection

    with connection.cursor() as c:
        c.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.search_words "
                  "USING fts5vocab(main, 'annotate_trajectory_search', 'instance')")
        c.execute("SELECT DISTINCT doc FROM temp.search_words ORDER BY doc")
        return [r[0] for r in c.fetchall()]


def test_rebuilding_the_index_drops_superseded_entries_and_finds_the_same(capsys):
    from django.core.management import call_command

    project, _ = get_or_create_project("search-rebuild")
    earlier = set(_entries())  # (other tests' entries: their rows are gone, their entries are not)
    first, second, third = _import(project, ["alpha", "beta", "gamma"])
    _save_with_word(first, "alpha", "delta")
    _save_with_word(first, "delta", "epsilon")
    third.delete()
    assert len(set(_entries()) - earlier) == 5  # three imported, two saved: three superseded or deleted
    queries = ["alpha", "beta", "gamma", "delta", "epsilon", "request", "lookup"]
    before = {q: _found(project, q) for q in queries}

    call_command("rebuild_search_index")
    assert "Indexed 2 trajectories." in capsys.readouterr().out
    assert _entries() == sorted([first.pk, second.pk])  # one entry per trajectory, under its id
    assert {q: _found(project, q) for q in queries} == before == {
        "alpha": [], "beta": ["r1"], "gamma": [], "delta": [], "epsilon": ["r0"], "request": ["r0", "r1"],
        "lookup": ["r0", "r1"]}
    _save_with_word(first, "epsilon", "zeta")  # saves go on as before
    assert _found(project, "epsilon") == [] and _found(project, "zeta") == ["r0"]
