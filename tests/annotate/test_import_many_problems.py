"""A file of many bad records: the first 1,000 problems are listed, every one is counted, and without
"skip invalid" reading stops there. A 3 MB file of a million ``{}`` lines made a million problems of
1 KB each (2.5 GB of memory, and an API response as large); a 200 MB one, more than a machine has."""

from __future__ import annotations

import io
import json
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError

from annotate.ingest import reader
from annotate.ingest import sqlite as bulk
from annotate.ingest.reader import MAX_LISTED, parse_file
from annotate.ingest.writer import import_file
from annotate.models import ImportBatch, Trajectory
from tests.conftest import PASSWORD

GOOD = json.dumps({"turns": [{"user": "hi", "assistant_answer": "hello"}]})


def bad_file(bad: int, good_every: int = 0) -> bytes:
    """``bad`` lines of ``{}`` (no format claims them), with a good record every ``good_every`` lines."""
    lines = []
    for i in range(bad):
        if good_every and i % good_every == 0:
            lines.append(GOOD)
        lines.append("{}")
    return ("\n".join(lines) + "\n").encode()


def test_a_million_bad_lines_are_refused_at_once_listing_the_first_thousand():
    t0 = time.perf_counter()
    r = parse_file(bad_file(1_000_000), "bad.jsonl")
    took = time.perf_counter() - t0
    assert len(r.errors) == MAX_LISTED + 1 and r.trajectories == []
    assert [e.line for e in r.errors[1:4]] == [1, 2, 3] and "raw: a 'turns' list" in r.errors[1].message
    # (the formats' rules, 1 KB, are given once; the next records in no known format refer to them)
    assert r.errors[2].message == "cannot tell the format (the formats and what identifies them: see line 1)"
    assert r.errors[0].message.startswith(f"reading stopped after {r.problem_count:,} problems")
    assert MAX_LISTED <= r.problem_count < 2 * MAX_LISTED
    assert took < 5, took  # (it read the whole file: 15 s here, and 2.5 GB)


def test_with_skip_invalid_every_bad_record_is_counted_and_the_good_ones_kept():
    r = parse_file(bad_file(30_000, good_every=10), "bad.jsonl", skip_invalid=True)
    assert len(r.trajectories) == 3_000
    assert len(r.errors) == MAX_LISTED and r.problem_count == 30_000 and r.stopped_after == 0


@pytest.mark.django_db
def test_the_api_and_the_batch_say_how_many_more_there_are(client, project, lead):
    client.login(username=lead.username, password=PASSWORD)
    r = client.post(f"/api/projects/{project.slug}/import/",
                    {"file": SimpleUploadedFile("bad.jsonl", bad_file(20_000, good_every=4)), "skip_invalid": "true"})
    assert r.status_code == 201, r.content[:300]
    body = r.json()
    assert (body["imported"], body["skipped"], len(body["errors"])) == (5_000, 20_000, MAX_LISTED + 1)
    assert body["errors"][0]["message"] == f"{20_000 - MAX_LISTED:,} more problems are not listed (the first 1,000 are)"
    assert len(r.content) < 150_000  # (1,001 entries; each repeated the formats' rules: 1.2 MB)
    batch = ImportBatch.objects.get(project=project)
    assert (batch.skipped, len(batch.errors)) == (20_000, MAX_LISTED + 1)
    assert project.trajectories.count() == 5_000


@pytest.mark.django_db
def test_the_upload_page_counts_what_it_does_not_show(client, project, lead):
    client.login(username=lead.username, password=PASSWORD)
    r = client.post(f"/p/{project.slug}/import/", {"file": SimpleUploadedFile("bad.jsonl", bad_file(5_000)),
                                                    "format": "auto"})
    body = r.content.decode()
    skipped = ImportBatch.objects.get(project=project).skipped
    assert "Nothing was imported" in body and MAX_LISTED <= skipped < 5_000  # (reading stopped)
    assert body.count("cannot tell the format") == 198  # (200 rows: the two notes first)
    assert f"… and {skipped - 198} more." in body  # (198 of the 200 rows are problems)
    assert f"reading stopped after {skipped:,} problems" in body and f"{skipped - MAX_LISTED:,} more problems are not" in body
    assert Trajectory.objects.count() == 0


@pytest.mark.django_db
def test_the_command_counts_every_problem(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(bad_file(3_000, good_every=3))
    err = io.StringIO()
    call_command("import_trajectories", str(path), project="many", skip_invalid=True, stdout=io.StringIO(), stderr=err)
    assert "... and 2,951 more problems" in err.getvalue()  # (49 of the 50 lines shown are problems: a note first)
    err = io.StringIO()
    with pytest.raises(CommandError, match=r"nothing imported from bad.jsonl: 1,\d{3} problem"):
        call_command("import_trajectories", str(path), project="many2", stdout=io.StringIO(), stderr=err)


@pytest.mark.django_db
@pytest.mark.parametrize("skip_invalid", [False, True])
def test_forked_readers_merge_their_counts(project, monkeypatch, skip_invalid):
    """Each reader lists its first problems; the file's result keeps the first of them by line and counts all."""
    if not bulk._can_fork():
        pytest.skip("needs fork and a second CPU")
    monkeypatch.setattr(reader, "MAX_LISTED", 7)
    monkeypatch.setattr(bulk, "STREAM_MIN_BYTES", 1024)
    monkeypatch.setattr(bulk, "READERS", 2)
    monkeypatch.setattr("annotate.ingest.writer.MAX_LISTED", 7)
    outcome = import_file(project, bad_file(3_000, good_every=2), "bad.jsonl", skip_invalid=skip_invalid)
    if skip_invalid:
        assert (outcome.imported, outcome.skipped, len(outcome.errors)) == (1_500, 3_000, 8)
        lines = [e["line"] for e in outcome.errors[1:]]
        assert lines == sorted(lines) and outcome.errors[0]["message"] == (
            "2,993 more problems are not listed (the first 7 are)")
    else:  # (each reader stops at the end of the batch where it has 7)
        assert outcome.imported == 0 and Trajectory.objects.filter(project=project).count() == 0
        assert outcome.errors[0]["message"].startswith(f"reading stopped after {outcome.skipped:,} problems")
        assert outcome.errors[1]["message"] == f"{outcome.skipped - 7:,} more problems are not listed (the first 7 are)"
        assert 7 <= outcome.skipped < 3_000


CANDIDATES = json.dumps({"question": "hi", "candidates": [{"answer": "a"}, {"answer": "b"}], "correct": 0})


@pytest.mark.django_db
def test_a_pairs_file_of_many_bad_records_lists_the_first_thousand(project, lead):
    """The same for preference records (`pairs import`, its page and API): 450 MB for a million bad lines."""
    from annotate.pairs.records import parse_candidates
    from annotate.pairs.services import import_candidates

    t0 = time.perf_counter()
    r = parse_candidates(b"{}\n" * 1_000_000, "p.jsonl")
    assert time.perf_counter() - t0 < 5 and r.pairs == []
    assert len(r.errors) == MAX_LISTED + 1 and r.errors[0]["message"].startswith("reading stopped after 1,000 problems")
    assert [e["line"] for e in r.errors[1:4]] == [1, 2, 3]
    lines = [CANDIDATES if i % 4 == 0 else ("{" if i % 4 == 1 else "{}") for i in range(8_000)]
    out = import_candidates(project, ("\n".join(lines) + "\n").encode(), "p.jsonl", user=lead, skip_invalid=True)
    assert (out.created + out.duplicates, out.skipped, len(out.errors)) == (2_000, 6_000, MAX_LISTED + 1)
    assert out.errors[0]["message"] == "5,000 more problems are not listed (the first 1,000 are)"
    assert [e["line"] for e in out.errors[1:5]] == [2, 3, 4, 6]  # (in line order, whatever the problem)
    assert {e["message"][:14] for e in out.errors[1:]} == {"not valid JSON", "must be a non-"}
