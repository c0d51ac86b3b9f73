"""A binary upload is one clear problem ("this is not a text file (looks like …)"), on the reader,
the API and the command line; a text file with a few bad lines keeps its per-line errors."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from annotate.ingest.reader import parse_file
from annotate.ingest.sniff import is_not_text, not_text_kind

GOOD = b'{"turns": [{"user": "hi", "assistant_answer": "hello"}]}'


def png(size: int = 3_000_000) -> bytes:
    """A PNG header and random-looking bytes, like a screenshot (3 MB: the issue's case)."""
    body = bytes((i * 7919 + (i >> 8)) % 256 for i in range(size))
    return b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + body


def a_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("data.jsonl", (GOOD + b"\n") * 500)
    return buf.getvalue()


@pytest.mark.parametrize("data, kind", [
    (png(20_000), "a PNG image"),
    (a_zip(), "a ZIP archive"),
    (b"\x1f\x8b\x08\x00" + bytes(range(256)) * 10, "a gzip-compressed file"),
    (b"SQLite format 3\x00" + bytes(4000), "an SQLite database"),
    (bytes(range(256)) * 40, "binary data"),
])
def test_a_binary_file_is_one_problem_naming_what_it_looks_like(data, kind):
    for skip_invalid in (False, True):
        r = parse_file(data, "upload.bin", skip_invalid=skip_invalid)
        assert r.trajectories == []
        [issue] = r.errors
        assert issue.message.startswith(f"this is not a text file (looks like {kind}")
        assert (issue.file, issue.line, issue.field) == ("upload.bin", None, "file")
        assert is_not_text(r.errors)


def test_a_text_file_with_a_few_bad_lines_keeps_its_per_line_errors():
    data = b"\n".join([GOOD, b'{"turns": [{"user": "caf\xe9"}]}', GOOD, b'{"turns": [{"user": "na\xefve"}]}', GOOD])
    assert not_text_kind(data) is None
    r = parse_file(data, "latin1.jsonl")
    assert [(e.line, e.message[:9]) for e in r.errors] == [(2, "not UTF-8"), (4, "not UTF-8")]
    assert not is_not_text(r.errors)


def test_the_api_answers_one_error_for_a_png(client, lead, project):
    client.force_login(lead)
    r = client.post(f"/api/projects/{project.slug}/import/",
                    {"file": SimpleUploadedFile("screenshot.png", png())}, format="multipart")
    assert r.status_code == 400
    [error] = r.json()["errors"]
    assert error["message"] == "this is not a text file (looks like a PNG image)"
    assert error["file"] == "screenshot.png"


def test_the_command_says_it_is_not_a_text_file_without_suggesting_skip_invalid(tmp_path, project, capsys):
    path = tmp_path / "export.zip"
    path.write_bytes(a_zip())
    with pytest.raises(CommandError) as e:
        call_command("import_trajectories", str(path), project=project.slug)
    assert "--skip-invalid" not in str(e.value)
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "export.zip [file]: this is not a text file (looks like a ZIP archive: unzip it and upload the JSON or "
        "JSON Lines file inside)"]
