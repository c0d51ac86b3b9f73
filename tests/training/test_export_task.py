"""The export task and the CLI: claim once, progress on the row, cancel, cache across re-exports."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from annotate.workbench.documents import replace_document
from tests.training.snapshot_helpers import approve_all, edited, fast_passwords, render_settings
from training.models import JobStatus, Snapshot
from training.snapshots.models import RenderCacheEntry
from training.snapshots.tasks import export_snapshot
from training.snapshots import create_snapshot, request_cancel
from training.snapshots.export_job import ProgressWriter

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]
_ = fast_passwords


@pytest.fixture
def snapshot(project, demo_trajectories, lead, tiny_model_dir, tmp_path):
    approve_all(project)
    return create_snapshot(project, "sft", {}, render_settings(tiny_model_dir), lead, enqueue=False,
                           out_dir=tmp_path / "snap")


def test_the_task_claims_renders_and_records_the_audit(snapshot):
    assert export_snapshot(snapshot.pk) == JobStatus.SUCCEEDED
    snapshot.refresh_from_db()
    assert (snapshot.status, snapshot.progress) == (JobStatus.SUCCEEDED, 1.0)
    assert snapshot.sample_count == 10 and snapshot.item_count == 10
    assert snapshot.audit["totals"]["supervised_tokens"] > 0
    # The demo's one step with error labels is masked by policy, which a messages row cannot carry.
    assert snapshot.audit_errors == snapshot.audit["errors"] == 1
    assert snapshot.audit["findings"]["masks_need_tokenized"] == 1 and snapshot.blocked
    assert "10 rendered, 0 from the cache" in snapshot.message
    on_disk = json.loads((snapshot_dir(snapshot) / "audit.json").read_text())
    assert on_disk == snapshot.audit
    assert json.loads((snapshot_dir(snapshot) / "snapshot.json").read_text())["content_hash"] == snapshot.content_hash


def snapshot_dir(snapshot):
    from pathlib import Path

    return Path(snapshot.out_dir)


def test_a_duplicate_delivery_does_nothing(snapshot):
    export_snapshot(snapshot.pk)
    finished = Snapshot.objects.get(pk=snapshot.pk).finished_at
    assert export_snapshot(snapshot.pk) == "not claimed"
    assert Snapshot.objects.get(pk=snapshot.pk).finished_at == finished


def test_cancelling_a_queued_export_stops_it_before_it_starts(snapshot, lead):
    request_cancel(snapshot, lead)
    assert export_snapshot(snapshot.pk) == "not claimed"
    snapshot.refresh_from_db()
    assert snapshot.status == JobStatus.CANCELLED and not (snapshot_dir(snapshot) / "audit.json").exists()


def test_cancelling_a_running_export_ends_it_cancelled(snapshot, monkeypatch):
    original = ProgressWriter.__call__

    def cancel_midway(self, fraction, message):
        if fraction > 0.01:
            Snapshot.objects.filter(pk=self.snapshot.pk).update(cancel_requested=True)
        self._last = 0.0  # write (and look at the row) on every call
        return original(self, fraction, message)

    monkeypatch.setattr(ProgressWriter, "__call__", cancel_midway)
    assert export_snapshot(snapshot.pk) == JobStatus.CANCELLED


def test_a_re_export_after_an_edit_renders_only_the_edited_trajectory(snapshot, project, lead, tiny_model_dir,
                                                                      tmp_path):
    export_snapshot(snapshot.pk)
    entries = RenderCacheEntry.objects.count()
    t = project.trajectories.get(external_id="demo-weather")
    replace_document(t, edited(t.revisions.get(version=1).document, "18 °C, cloudy."), user=lead, base_version=1)
    again = create_snapshot(project, "sft", {}, render_settings(tiny_model_dir), lead, enqueue=False,
                            out_dir=tmp_path / "again")
    export_snapshot(again.pk)
    again.refresh_from_db()
    assert "1 rendered, 9 from the cache" in again.message
    assert RenderCacheEntry.objects.count() == entries + 1
    assert "18 °C, cloudy." in (tmp_path / "again" / "train.jsonl").read_text()


def test_the_create_view_enqueues_after_commit(project, demo_trajectories, lead, tiny_model_dir,
                                               django_capture_on_commit_callbacks, monkeypatch):
    approve_all(project)
    sent = []
    monkeypatch.setattr(export_snapshot, "delay", lambda pk: sent.append(pk))
    with django_capture_on_commit_callbacks(execute=True):
        snap = create_snapshot(project, "sft", {}, render_settings(tiny_model_dir), lead)
    assert sent == [snap.pk]


# --- the CLI ----------------------------------------------------------------------------------------

def test_the_cli_writes_the_files_and_prints_progress(project, demo_trajectories, tiny_model_dir, tmp_path, capsys):
    approve_all(project)
    out = tmp_path / "cli"
    call_command("create_snapshot", str(out), project=project.slug, kind="sft", template="qwen3_training",
                 tokenizer=str(tiny_model_dir), tokenized=True, strategy="conversation")
    printed = capsys.readouterr().out
    assert "[  0%]" in printed and "[100%] done" in printed
    assert "10 samples from 10 items" in printed
    assert {"train.jsonl", "eval.jsonl", "audit.json", "snapshot.json", "README.md"} <= {p.name for p in out.iterdir()}
    assert (out / "hf" / "train").is_dir()
    first = json.loads((out / "train.jsonl").read_text().splitlines()[0])
    assert {"messages", "tools", "input_ids", "labels", "assistant_masks"} <= set(first)
    call_command("create_snapshot", str(out), project=project.slug, kind="sft", template="qwen3_training",
                 tokenizer=str(tiny_model_dir), tokenized=True, strategy="conversation")
    assert "files unchanged" in capsys.readouterr().out


def test_the_cli_exits_non_zero_when_the_audit_blocks_and_records_an_override(project, demo_trajectories, lead,
                                                                              tiny_model_dir, tmp_path, capsys):
    approve_all(project)
    args = dict(project=project.slug, kind="sft", template="qwen3_training", tokenizer=str(tiny_model_dir),
                max_length=16)
    with pytest.raises(CommandError, match="BLOCKED: the audit found"):
        call_command("create_snapshot", str(tmp_path / "short"), **args)
    assert "all_supervised_truncated: 10" in capsys.readouterr().out
    assert json.loads((tmp_path / "short" / "audit.json").read_text())["errors"] >= 10
    call_command("create_snapshot", str(tmp_path / "short2"), user=lead.username, override="known: demo only", **args)
    snap = Snapshot.objects.get(out_dir=str(tmp_path / "short2"))
    assert snap.override_by == lead and snap.override_reason == "known: demo only" and not snap.blocked


def test_the_cli_names_a_bad_setting(project, demo_trajectories, tiny_model_dir, tmp_path):
    approve_all(project)
    with pytest.raises(CommandError, match="template"):
        call_command("create_snapshot", str(tmp_path / "x"), project=project.slug, kind="sft", template="nope",
                     tokenizer=str(tiny_model_dir))


# The sweep restarting (then failing) an export whose worker died: tests/training/test_job_queue.py.


def test_an_export_stops_when_the_sweep_already_failed_it(snapshot, monkeypatch):
    original = ProgressWriter.__call__

    def swept_midway(self, fraction, message):
        if fraction > 0.01:
            Snapshot.objects.filter(pk=self.snapshot.pk).update(status=JobStatus.FAILED, error="swept")
        self._last = 0.0
        return original(self, fraction, message)

    monkeypatch.setattr(ProgressWriter, "__call__", swept_midway)
    export_snapshot(snapshot.pk)
    snapshot.refresh_from_db()
    assert (snapshot.status, snapshot.error) == (JobStatus.FAILED, "swept")  # the sweep's verdict stands
