"""What an import keeps outside the canonical fields (``extra``) survives the database, the editor
and the raw export; the preview shows what an import would write and writes nothing; bad text gets
a line error, never a traceback or a silent cut."""

from __future__ import annotations

import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from annotate.formats import export_records
from annotate.ingest.writer import import_file
from annotate.models import ImportBatch, Project, Trajectory, documents_of
from annotate.workbench.editing import Edit
from annotate.workbench.saving import save_edit
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

RECORD = {"id": "w-1", "dataset": "handmade <b>v2</b>", "turns": [{
    "user": "Weather in Paris?", "lang": "en",
    "steps": [{"type": "think", "content": "One call.", "confidence": 0.5},
              {"type": "tool_call", "name": "get_weather", "arguments": {"city": "Paris"}, "latency_ms": 120},
              {"type": "tool_result", "content": {"forecast": "rain"}, "cached": "<script>alert(1)</script>"},
              {"type": "answer", "content": "Rain in Paris."}]}]}
FILE = (json.dumps(RECORD) + "\n").encode()


def login(client, user):
    client.login(username=user.username, password=PASSWORD)
    return client


def test_extra_is_stored_read_back_and_written_by_the_raw_export(project):
    outcome = import_file(project, FILE, "w.jsonl")
    assert outcome.imported == 1
    t = project.trajectories.get()
    doc = t.to_canonical()
    assert doc.meta.extra == {"dataset": "handmade <b>v2</b>"} and doc.turns[0].extra == {"lang": "en"}
    assert [s.extra for s in doc.turns[0].steps] == [{"confidence": 0.5}, {"latency_ms": 120},
                                                     {"cached": "<script>alert(1)</script>"}, {}]
    assert documents_of([t.pk])[t.pk] == doc
    exported = next(export_records([doc], "raw"))
    again = import_file(Project.objects.create(name="copy", slug="copy"), (json.dumps(exported) + "\n").encode(), "x.jsonl")
    assert again.imported == 1
    copy = Trajectory.objects.get(project__slug="copy").to_canonical()
    assert copy.turns == doc.turns and copy.meta.extra == doc.meta.extra


def test_an_edited_step_keeps_its_extra(project, lead):
    import_file(project, FILE, "w.jsonl")
    t = project.trajectories.get()
    save_edit(t, Edit("update_step", turn=0, step=1, fields={"arguments": {"city": "Lyon"}}), user=lead,
              base_version=t.version)
    doc = Trajectory.objects.get(pk=t.pk).to_canonical()
    assert doc.turns[0].steps[1].arguments == {"city": "Lyon"}
    assert doc.turns[0].steps[1].extra == {"latency_ms": 120} and doc.turns[0].extra == {"lang": "en"}


def test_the_editor_shows_extra_read_only_and_escaped(client, project, lead):
    import_file(project, FILE, "w.jsonl")
    t = project.trajectories.get()
    r = login(client, lead).get(f"/t/{t.pk}/")
    body = r.content.decode()
    assert body.count("From the source") == 5  # the record, the turn, and the think, call and result steps
    assert "&quot;latency_ms&quot;: 120" in body and "&quot;lang&quot;: &quot;en&quot;" in body
    assert "<script>alert(1)</script>" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "handmade &lt;b&gt;v2&lt;/b&gt;" in body


# --- preview / dry run --------------------------------------------------------------------------------

def test_the_command_line_dry_run_prints_the_summary_and_writes_nothing(tmp_path, capsys):
    path = tmp_path / "w.jsonl"
    path.write_bytes(FILE)
    call_command("import_trajectories", str(path), project="fresh", dry_run=True)
    out = capsys.readouterr().out
    assert "raw, 1 record(s) read" in out
    assert "think 1, tool_call 1, tool_result 1, answer 1" in out
    assert "kept in extra: record.dataset (1), step.cached (1), step.confidence (1), step.latency_ms (1), turn.lang (1)" in out
    assert 'tool_result: {"forecast": "rain"}' in out
    assert not Project.objects.filter(slug="fresh").exists() and Trajectory.objects.count() == 0
    assert ImportBatch.objects.count() == 0


def test_the_api_dry_run_answers_the_summary_and_writes_nothing(client, project, lead):
    r = login(client, lead).post(f"/api/projects/{project.slug}/import/",
                                 {"file": SimpleUploadedFile("w.jsonl", FILE), "dry_run": "true"})
    assert r.status_code == 200, r.content
    s = r.json()
    assert (s["format"], s["counts"]["records"], s["counts"]["calls"], s["would_import"]) == ("raw", 1, 1, 1)
    assert {"path": "turn.lang", "records": 1} in s["extra"]
    assert [st["kind"] for st in s["first"]["turns"][0]["steps"]] == ["think", "tool_call", "tool_result", "answer"]
    assert Trajectory.objects.count() == 0 and ImportBatch.objects.count() == 0


def test_the_upload_page_previews_then_imports_on_confirmation(client, project, lead, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    c = login(client, lead)
    r = c.post(f"/p/{project.slug}/import/", {"file": SimpleUploadedFile("w.jsonl", FILE), "format": "auto",
                                               "action": "preview"})
    body = r.content.decode()
    assert "Preview of w.jsonl: nothing is written yet" in body and "turn.lang" in body
    assert Trajectory.objects.count() == 0
    token = re.search(r'name="token" value="([^"]+)"', body).group(1)
    r = c.post(f"/p/{project.slug}/import/", {"token": token}, follow=True)
    assert b"Imported 1 trajectories from w.jsonl" in r.content
    assert project.trajectories.count() == 1
    assert not any((tmp_path / "imports" / "pending").iterdir())  # the kept file is gone


def test_a_preview_is_only_confirmed_by_its_uploader_and_a_token_is_never_a_path(client, project, lead, make_user,
                                                                                 settings, tmp_path):
    settings.DATA_DIR = tmp_path
    c = login(client, lead)
    r = c.post(f"/p/{project.slug}/import/", {"file": SimpleUploadedFile("w.jsonl", FILE), "action": "preview",
                                               "format": "auto"})
    token = re.search(r'name="token" value="([^"]+)"', r.content.decode()).group(1)
    other = make_user("lea2", "lead", project)
    c2 = login(client.__class__(), other)
    for bad in (token, "../../secret_key", "..", "a" * 30 + "/.."):
        r = c2.post(f"/p/{project.slug}/import/", {"token": bad}, follow=True)
        assert b"has expired or is not yours" in r.content
    assert Trajectory.objects.count() == 0


def test_a_preview_of_a_bad_file_offers_no_import(client, project, lead, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    bad = FILE + b'{"turns": [{"user": "x\\u0000y"}]}\n'
    r = login(client, lead).post(f"/p/{project.slug}/import/", {"file": SimpleUploadedFile("b.jsonl", bad),
                                                                "action": "preview", "format": "auto"})
    body = r.content.decode()
    assert "Nothing would be imported" in body and 'name="token"' not in body
    assert "turns[0].user" in body and "NUL character" in body


# --- bad text: a line error, nothing written (issue 13, problem 6) ------------------------------------

def raw_call(name: str = "f", call_id: str = "", arguments: str = "{}", user: str = "u") -> bytes:
    call = {"name": name, "arguments": arguments, **({"call_id": call_id} if call_id else {})}
    return json.dumps({"turns": [{"user": user, "assistant_tool": call}]}).encode()


GOOD_LINE = json.dumps({"turns": [{"user": "hi", "assistant_answer": "hello"}]}).encode()


@pytest.mark.parametrize("line, field, words", [
    (raw_call(arguments='{"a": NaN}'), "turns[0].assistant_tool.arguments", "NaN is not a number JSON allows"),
    (raw_call(arguments='{"a": 1e999}'), "turns[0].assistant_tool.arguments", "1e999 is not a number JSON allows"),
    (b'{"turns": [{"user": "a\\ud800b"}]}', "turns[0].user", "lone surrogate"),
    (raw_call(arguments='{"a": "\\ud800"}'), "turns[0].steps[0].arguments.a", "lone surrogate"),
    (b'{"turns": [{"user": "a\\u0000b"}]}', "turns[0].user", "NUL character"),
    (raw_call(name="f" * 201), "turns[0].assistant_tool.name", "at most 200 characters"),
    (raw_call(call_id="c" * 201), "turns[0].assistant_tool.id", "at most 200 characters"),
    (json.dumps({"id": "i" * 301, "turns": []}).encode(), "id", "at most 300 characters"),
    (json.dumps({"meta": {"source": "s" * 301}, "turns": []}).encode(), "meta.source", "at most 300 characters"),
], ids=["nan", "1e999", "surrogate", "surrogate-in-arguments", "nul", "long-name", "long-call-id", "long-id",
        "long-source"])
def test_text_the_database_cannot_hold_is_a_line_error_and_nothing_is_written(project, line, field, words):
    outcome = import_file(project, GOOD_LINE + b"\n" + line + b"\n", "bad.jsonl")
    assert outcome.imported == 0 and project.trajectories.count() == 0
    [e] = outcome.errors
    assert e["line"] == 2 and e["field"].endswith(field) and words in e["message"], e


def test_an_external_id_of_300_characters_is_stored_whole(project):
    outcome = import_file(project, json.dumps({"id": "i" * 300, "turns": []}).encode(), "ok.jsonl")
    assert outcome.imported == 1 and project.trajectories.get().external_id == "i" * 300
