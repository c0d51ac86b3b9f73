"""In Chromium: two annotators label the same trajectory, their versions disagree; the lead
adjudicates step by step (differences highlighted); a snapshot that requires adjudicated versions
refuses the trajectory before and pins the adjudicated version after.

The versions here are each annotator's latest revision (the adjudication's default source);
blind versions come from overlap once it registers its version source."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from annotate.adjudication.models import Adjudication
from annotate.ingest.writer import write_trajectories
from annotate.models import Revision, Trajectory
from tests.browser.conftest import login, screenshot
from tests.conftest import PASSWORD
from tests.evaluation.test_judge import weather_doc
from training.models import Snapshot
from training.snapshots.tasks import export_snapshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def label_step(page, step_id: str, check: str = "", uncheck: str = "", saved: str = "") -> None:
    step = page.locator(f"#{step_id}")
    if not step.locator("details.labels[open]").count():  # open already where the step has labels
        step.locator("details.labels summary").click()
    if uncheck:
        step.get_by_label(uncheck).uncheck()
    if check:
        step.get_by_label(check).check()
    step.get_by_role("button", name="Save step").click()
    expect(step.locator(".saved-mark")).to_have_text(saved)


def test_a_lead_adjudicates_two_annotators_step_by_step_and_the_snapshot_takes_it(
        new_page, project, lead, annotator, make_user, tiny_model_dir, monkeypatch):
    monkeypatch.setattr(export_snapshot, "delay", lambda pk: None)  # the export itself is not this test's
    bea = make_user("bea", "annotator", project)
    t = write_trajectories(project, [weather_doc()])[0]

    # ann labels the call wrong_tool; then bea, on her turn, disagrees there and labels the answer.
    for user, steps in ((annotator, [("step-0-0", "wrong_tool", "", "saved · v2")]),
                        (bea, [("step-0-0", "", "wrong_tool", "saved · v3"),
                               ("step-0-2", "ungrounded_answer", "", "saved · v4")])):
        Trajectory.objects.filter(pk=t.pk).update(assignee=user)
        page = new_page()
        login(page, user.username, PASSWORD)
        page.goto(f"/t/{t.pk}/")
        for step_id, check, uncheck, saved in steps:
            label_step(page, step_id, check, uncheck, saved)

    lead_page = new_page()
    login(lead_page, "lena", PASSWORD)
    # Before adjudication, a snapshot that requires it finds nothing to take.
    lead_page.goto("/training/p/weather/snapshots/new/")
    lead_page.select_option("select[name=status]", "any")
    lead_page.fill("input[name=tokenizer]", str(tiny_model_dir))
    lead_page.get_by_label("Require adjudicated versions").check()
    lead_page.locator("form button[type=submit]").last.click()
    expect(lead_page.locator("body")).to_contain_text("the selection matches nothing")

    lead_page.goto("/p/weather/adjudication/")
    lead_page.get_by_role("link", name=f"#{t.pk}").click()
    table = lead_page.locator("#adjudication")
    expect(table.locator("tr.differs")).to_have_count(2)
    expect(table.locator("#step-0-1")).to_have_class("agreed")
    expect(table.locator("#step-0-0 td[data-version=ann] .labels")).to_have_class("field labels differs")
    screenshot(lead_page, "adjudication-1366")
    lead_page.set_viewport_size({"width": 768, "height": 900})
    screenshot(lead_page, "adjudication-768")
    lead_page.set_viewport_size({"width": 1366, "height": 800})

    # Saving with a difference undecided names the step; then the lead picks per step.
    table.locator("#step-0-0").get_by_label("ann's", exact=True).check()
    lead_page.locator("#save-adjudication").click()
    expect(lead_page.locator("#adjudication-error")).to_contain_text("turn 1 step 3")
    lead_page.locator("#adjudication #step-0-2").get_by_label("bea's", exact=True).check()
    lead_page.locator("#save-adjudication").click()
    expect(lead_page.locator("#adjudicated")).to_contain_text("(the current version)")
    adj = Adjudication.objects.get()
    assert [(p["step"], p["from"]) for p in adj.provenance] == [(0, "ann"), (1, "agreed"), (2, "bea")]

    # Now the snapshot takes the trajectory, at its adjudicated version.
    lead_page.goto("/training/p/weather/snapshots/new/")
    lead_page.select_option("select[name=status]", "any")
    lead_page.fill("input[name=tokenizer]", str(tiny_model_dir))
    lead_page.get_by_label("Require adjudicated versions").check()
    lead_page.locator("form button[type=submit]").last.click()
    lead_page.wait_for_url("**/training/snapshots/**")
    snap = Snapshot.objects.get()
    adjudicated = Revision.objects.get(trajectory=t, version=adj.version)
    assert list(snap.items.values_list("revision_id", flat=True)) == [adjudicated.pk]
    assert adjudicated.document["turns"][0]["steps"][0]["labels"] == ["wrong_tool"]
    assert adjudicated.document["turns"][0]["steps"][2]["labels"] == ["ungrounded_answer"]


def test_two_annotators_label_blind_versions_and_the_lead_adjudicates_the_original(
        new_page, project, lead, annotator, make_user, settings):
    from annotate.agreement import services
    from annotate.agreement.models import OverlapVersion
    from annotate.models import Tool

    settings.CELERY_TASK_ALWAYS_EAGER = True  # the agreement refresh after each submission, in process
    make_user("bea", "annotator", project)
    Tool.objects.create(project=project, name="get_time", description="time", parameters={
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
    doc = weather_doc()
    doc.tools = [{"name": "get_time", "description": "time", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
    original = write_trajectories(project, [doc])[0]
    conf = services.settings_for(project)
    conf.annotators, conf.share, conf.threshold = 2, 1.0, 0.99
    conf.save()
    assert services.create_versions(project) == 1
    lead_page = new_page()
    login(lead_page, "lena", PASSWORD)

    for username, step_id, label, seen in (("ann", "step-0-0", "wrong_tool", "annotators: ann ·"),
                                           ("bea", "step-0-2", "ungrounded_answer", "annotators: ann, bea ·")):
        page = new_page()
        page.on("dialog", lambda d: d.accept())
        login(page, username, PASSWORD)
        page.goto("/p/weather/trajectories/")
        page.locator("form[action='/p/weather/next/'] button").click()  # the queue hands each their own version
        page.wait_for_url("**/t/*/")
        mine = OverlapVersion.objects.get(annotator__username=username)
        assert page.url.endswith(f"/t/{mine.copy_id}/")
        label_step(page, step_id, check=label, saved="saved · v2")
        page.get_by_role("button", name="Submit for review").click()
        expect(page.locator("body")).to_contain_text("Submitted")
        # Blind: the other version stays closed to this annotator.
        other = OverlapVersion.objects.exclude(annotator__username=username).get()
        assert page.goto(f"/t/{other.copy_id}/").status in (403, 404)
        # The agreement page follows the submissions.
        lead_page.goto("/p/weather/agreement/")
        expect(lead_page.locator("body")).to_contain_text(seen)

    report = services.latest_report(project)
    assert report.figures["annotators"] == ["ann", "bea"]  # the agreement refreshed after both submissions

    from training.snapshots.selection import Selection, pin_revisions, select_trajectories

    def pinned():
        return pin_revisions(select_trajectories([project], Selection.from_dict(
            {"status": "any", "require_adjudicated": True})))

    assert pinned() == []  # the versions disagree (below the threshold) and nobody adjudicated yet
    screenshot(lead_page, "agreement-after-two-versions-1366")

    lead_page.goto("/p/weather/adjudication/")
    lead_page.get_by_role("link", name=f"#{original.pk}").click()
    expect(lead_page.locator("body")).to_contain_text(f"version #")
    table = lead_page.locator("#adjudication")
    expect(table.locator("tr.differs")).to_have_count(2)
    table.locator("#step-0-0").get_by_label("ann's", exact=True).check()
    table.locator("#step-0-2").get_by_label("bea's", exact=True).check()
    lead_page.locator("#save-adjudication").click()
    expect(lead_page.locator("#adjudicated")).to_contain_text("(the current version)")
    original.refresh_from_db()
    assert sorted(original.step_labels.values_list("label", flat=True)) == ["ungrounded_answer", "wrong_tool"]
    adj = Adjudication.objects.get(trajectory=original)
    assert [(p["step"], p["from"]) for p in adj.provenance] == [(0, "ann"), (1, "agreed"), (2, "bea")]
    # The snapshot takes the original (never the copies) at its adjudicated version.
    assert pinned() == [(original.pk, Revision.objects.get(trajectory=original, version=adj.version).pk)]
