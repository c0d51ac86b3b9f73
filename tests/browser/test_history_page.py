"""History as a user reads it: a status change says so ("Submitted for review by ann", "Approved by
lena"), revert says why it is not available when it is not, and asks before it reverts.

Screenshots land in var/screenshots/history-*.png.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from annotate.models import Trajectory
from tests.browser.conftest import login, screenshot
from tests.browser.test_workbench import by_external_id, fresh_doc
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_submitted_trajectory_reads_as_submitted_and_revert_says_why_not(new_page, lead, annotator, project,
                                                                           demo_trajectories):
    t = by_external_id(demo_trajectories, "demo-weather")
    Trajectory.objects.filter(pk=t.pk).update(assignee=annotator)
    page = new_page()
    login(page, annotator.username, PASSWORD)
    page.goto(f"/t/{t.pk}/")
    page.locator("#step-0-0 textarea[name=text]").fill("Paris weather: one get_weather call.")
    page.locator("#step-0-0").get_by_role("button", name="Save step").click()
    expect(page.locator("#step-0-0 .saved-mark")).to_have_text("saved · v2")
    page.on("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Submit for review").click()
    page.wait_for_load_state("networkidle")
    page.goto(f"/t/{t.pk}/history/")

    v3 = page.locator("#v3")
    expect(v3.locator(".rev-head")).to_contain_text("Submitted for review by ann")
    expect(v3.locator(".status-line")).to_contain_text("draft → submitted")
    expect(v3).not_to_contain_text("No change")
    expect(v3).not_to_contain_text("edited turn")
    # The annotator cannot revert a submitted trajectory, and the page says why.
    expect(page.get_by_role("button", name="Revert to version 2")).to_have_count(0)
    expect(page.locator("#revert-unavailable")).to_contain_text("submitted and waiting for review")
    expect(page.locator("#revert-unavailable")).to_contain_text("A lead can reject it or reopen it")
    screenshot(page, "history-1-submitted")


def test_a_lead_sees_approved_by_and_is_asked_before_reverting(new_page, lead, annotator, project, demo_trajectories):
    t = by_external_id(demo_trajectories, "demo-weather")
    page = new_page((768, 900))
    login(page, lead.username, PASSWORD)
    page.goto(f"/t/{t.pk}/")
    page.locator("#step-0-0 textarea[name=text]").fill("A lead's thought.")
    page.locator("#step-0-0").get_by_role("button", name="Save step").click()
    expect(page.locator("#step-0-0 .saved-mark")).to_have_text("saved · v2")
    accept = lambda d: d.accept()  # noqa: E731 (the editor asks before submitting)
    page.on("dialog", accept)
    page.get_by_role("button", name="Submit for review").click()
    page.wait_for_load_state("networkidle")
    page.goto(f"/t/{t.pk}/")  # (submitting moves on to the next trajectory)
    page.get_by_role("button", name="Approve").click()
    page.wait_for_load_state("networkidle")
    page.goto(f"/t/{t.pk}/history/")
    expect(page.locator("#v4 .rev-head")).to_contain_text("Approved by lena")
    expect(page.locator("#v4 .status-line")).to_contain_text("submitted → approved")
    screenshot(page, "history-2-approved-768")
    # v2 (the lead's edit) and v3 (submitted) hold the current document: reverting to them would change
    # nothing, so they offer no revert and say so; v1 (the import) does.
    for same in ("#v2", "#v3"):
        expect(page.locator(same).get_by_role("button")).to_have_count(0)
        expect(page.locator(same + " .same-as-current")).to_contain_text("nothing to revert")
    expect(page.get_by_role("button", name="Revert to version 1")).to_have_count(1)

    asked = []
    page.remove_listener("dialog", accept)
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    page.get_by_role("button", name="Revert to version 1").click()
    page.wait_for_timeout(300)
    assert asked and "Revert to version 1?" in asked[0]
    t.refresh_from_db()
    assert t.version == 4  # dismissed: nothing happened
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Revert to version 1").click()
    page.wait_for_url(f"**/t/{t.pk}/")
    assert fresh_doc(t).turns[0].steps[0].text != "A lead's thought."
