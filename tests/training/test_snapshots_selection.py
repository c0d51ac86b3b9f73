"""Snapshots: what a selection pins, the content hash, reuse, roles and the override record.

Nothing here renders: creating a snapshot only pins revisions and queues the export.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404

from annotate.models import StepLabel, Trajectory
from annotate.workbench.documents import replace_document
from tests.training.snapshot_helpers import approve_all, edited, fast_passwords, render_settings
from training.models import JobStatus, Snapshot
from training.snapshots import selection
from training.snapshots import (PinnedPair, SnapshotError, create_snapshot, override_audit, plan_snapshot,
                                register_pair_selector)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]
_ = fast_passwords


@pytest.fixture
def settings_(tiny_model_dir):
    return render_settings(tiny_model_dir)


def _set_status(project, statuses: dict[str, str]) -> None:
    for ext, status in statuses.items():
        Trajectory.objects.filter(project=project, external_id=ext).update(status=status)


@pytest.mark.parametrize("status, expected", [
    ("approved", {"demo-weather"}),
    ("submitted", {"demo-weather", "demo-parallel"}),
    ("any", {"demo-weather", "demo-parallel", "demo-no-tool", "demo-clarify"}),
])
def test_the_status_filter_picks_what_the_lead_asked_for(project, demo_trajectories, lead, settings_, status,
                                                         expected):
    project.trajectories.exclude(external_id__in=["demo-weather", "demo-parallel", "demo-no-tool",
                                                  "demo-clarify"]).delete()
    _set_status(project, {"demo-weather": "approved", "demo-parallel": "submitted", "demo-no-tool": "draft",
                          "demo-clarify": "rejected"})
    snap = create_snapshot(project, "sft", {"status": status}, settings_, lead, enqueue=False)
    picked = set(snap.items.values_list("trajectory__external_id", flat=True))
    assert picked == expected


@pytest.mark.parametrize("filters, expected", [
    ({"splits": ["eval"]}, "split"),
    ({"case_types": ["clarification", "tool_failure"]}, "case_types"),
    ({"labels": ["wrong_tool"]}, "labels"),
])
def test_filters_narrow_the_selection(project, demo_trajectories, lead, settings_, filters, expected):
    approve_all(project)
    labelled = project.trajectories.get(external_id="demo-weather")
    step = labelled.steps.filter(kind="tool_call").first()
    StepLabel.objects.create(step=step, trajectory=labelled, label="wrong_tool")
    snap = create_snapshot(project, "sft", filters, settings_, lead, enqueue=False)
    picked = list(Trajectory.objects.filter(pk__in=snap.items.values("trajectory_id")))
    assert picked
    for t in picked:
        if expected == "split":
            assert t.split == "eval"
        elif expected == "case_types":
            assert set(t.case_types) & {"clarification", "tool_failure"}
        else:
            assert t.step_labels.filter(label="wrong_tool").exists()
    assert len(picked) < project.trajectories.count()


def test_the_same_inputs_give_the_same_hash_and_the_same_snapshot(project, demo_trajectories, lead, settings_):
    approve_all(project)
    first = create_snapshot(project, "sft", {}, settings_, lead, enqueue=False)
    again = create_snapshot(project, "sft", {}, settings_, lead, enqueue=False)
    assert (first.reused, again.reused) == (False, True)
    assert again.pk == first.pk
    assert Snapshot.objects.count() == 1


def test_an_edit_changes_the_hash_and_pins_the_new_revision(project, demo_trajectories, lead, settings_):
    approve_all(project)
    first = create_snapshot(project, "sft", {}, settings_, lead, enqueue=False)
    t = project.trajectories.get(external_id="demo-weather")
    doc = t.revisions.get(version=t.version).document
    replace_document(t, edited(doc, "Paris: 18 degrees, cloudy."), user=lead, base_version=t.version)
    second = create_snapshot(project, "sft", {}, settings_, lead, enqueue=False)
    assert second.pk != first.pk and second.content_hash != first.content_hash
    pinned_then = first.items.get(trajectory=t).revision
    pinned_now = second.items.get(trajectory=t).revision
    assert (pinned_then.version, pinned_now.version) == (1, 2)
    assert "Paris: 18 degrees, cloudy." in str(pinned_now.document)


@pytest.mark.parametrize("change", [
    {"strategy": "turn"}, {"reasoning_loss": False}, {"error_policy": "drop"}, {"max_length": 512},
    {"tokenized": True}, {"template": "qwen2_5_training"},
])
def test_each_render_setting_is_part_of_the_hash(project, demo_trajectories, lead, settings_, change):
    approve_all(project)
    base = plan_snapshot(project, "sft", {}, settings_).content_hash
    assert plan_snapshot(project, "sft", {}, {**settings_, **change}).content_hash != base


@pytest.mark.parametrize("bad, field", [
    ({"strategy": "sometimes"}, "strategy"),
    ({"error_policy": "ignore"}, "error_policy"),
    ({"max_length": "long"}, "max_length"),
    ({"template": "no_such_template"}, "template"),
    ({"tokenizer": "/nonexistent/tokenizer"}, "tokenizer"),
])
def test_bad_render_settings_name_the_field(project, demo_trajectories, lead, settings_, bad, field):
    approve_all(project)
    with pytest.raises(SnapshotError) as e:
        create_snapshot(project, "sft", {}, {**settings_, **bad}, lead, enqueue=False)
    assert e.value.field == field


@pytest.mark.parametrize("filters, field", [
    ({"status": "finished"}, "status"), ({"splits": ["holdout"]}, "splits"),
    ({"case_types": ["weird"]}, "case_types"), ({"status": "approved"}, "filters"),
])
def test_bad_or_empty_selections_are_refused(project, demo_trajectories, lead, settings_, filters, field):
    with pytest.raises(SnapshotError) as e:  # nothing is approved yet: the last case selects nothing
        create_snapshot(project, "sft", filters, settings_, lead, enqueue=False)
    assert e.value.field == field


def test_only_leads_may_snapshot(project, demo_trajectories, annotator, outsider, settings_):
    approve_all(project)
    with pytest.raises(PermissionDenied):
        create_snapshot(project, "sft", {}, settings_, annotator, enqueue=False)
    with pytest.raises(Http404):
        create_snapshot(project, "sft", {}, settings_, outsider, enqueue=False)
    assert Snapshot.objects.count() == 0


def test_other_projects_join_only_where_the_user_leads(project, demo_trajectories, lead, outsider, settings_):
    approve_all(project)
    other = outsider.memberships.get().project
    with pytest.raises(SnapshotError) as e:
        create_snapshot(project, "sft", {"projects": [other.slug]}, settings_, lead, enqueue=False)
    assert e.value.field == "projects"


def test_an_override_records_who_when_and_why(project, demo_trajectories, lead, annotator, settings_):
    approve_all(project)
    snap = create_snapshot(project, "sft", {}, settings_, lead, enqueue=False)
    Snapshot.objects.filter(pk=snap.pk).update(status=JobStatus.SUCCEEDED, audit_errors=3)
    snap.refresh_from_db()
    assert snap.blocked
    with pytest.raises(SnapshotError):
        override_audit(snap, lead, "  ")
    with pytest.raises(PermissionDenied):
        override_audit(snap, annotator, "fine")
    override_audit(snap, lead, "the truncated rows are known long ones")
    snap.refresh_from_db()
    assert not snap.blocked
    assert (snap.override_by, snap.override_reason) == (lead, "the truncated rows are known long ones")
    assert snap.override_at is not None


def _pair_doc(answer: str) -> dict:
    return {"context": {"turns": [{"user": "weather in Oslo?", "steps": []}],
                        "meta": {"case_types": ["tool_required"]}},
            "chosen": [{"kind": "answer", "text": answer}], "rejected": [{"kind": "answer", "text": "no idea"}],
            "meta": {"category": "other"}}


def test_dpo_snapshots_pin_pair_contents_from_the_registered_selector(project, lead, settings_):
    docs = [_pair_doc("3 degrees")]
    selector = register_pair_selector(lambda proj, filters: [PinnedPair(d, source_id=7) for d in docs])
    try:
        snap = create_snapshot(project, "dpo", {}, settings_, lead, enqueue=False)
        docs[0] = _pair_doc("3 degrees and snow")  # the pair is edited after the snapshot
        again = create_snapshot(project, "dpo", {}, settings_, lead, enqueue=False)
    finally:
        selection._pair_selectors.remove(selector)
    pinned = snap.pairs.get()
    assert (pinned.source_id, pinned.document["chosen"][0]["text"]) == (7, "3 degrees")
    assert again.pk != snap.pk and again.pairs.get().document["chosen"][0]["text"] == "3 degrees and snow"
