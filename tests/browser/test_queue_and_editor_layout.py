"""What a lead sees around the queue: suggestions credit the annotator who corrected, the admin
speaks plural English, the queue fits a 768 px screen, the review panel stays near the top of the
editor there, and bulk actions work from the queue.

Screenshots land in var/screenshots/queue-*.png and editor-*.png.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from annotate.models import Trajectory
from annotate.workbench.transitions import transition
from tests.annotate.test_pairs_suggestions import fix_city, save
from tests.browser.conftest import login, screenshot
from tests.browser.test_workbench import by_external_id
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_suggestion_credits_the_annotator_not_the_approving_lead(new_page, lead, annotator, project,
                                                                   demo_trajectories):
    tokyo = by_external_id(demo_trajectories, "demo-needs-fixing")
    save(tokyo, annotator, fix_city)
    transition(tokyo, "submit", user=annotator)
    transition(tokyo, "approve", user=lead)
    page = new_page()
    login(page, lead.username, PASSWORD)
    page.goto(f"/p/{project.slug}/pairs/suggestions/")
    expect(page.locator("main")).to_contain_text("corrected by ann")
    expect(page.locator("main")).not_to_contain_text("corrected by lena")
    screenshot(page, "queue-suggestions-credit")


def test_the_admin_says_trajectories_and_import_batches(new_page, admin_user_):
    page = new_page()
    login(page, admin_user_.username, PASSWORD)
    page.goto("/admin/")
    main = page.locator("#content-main")
    expect(main.get_by_role("link", name="Trajectories", exact=True)).to_be_visible()
    expect(main.get_by_role("link", name="Import batches", exact=True)).to_be_visible()
    expect(main).not_to_contain_text("Trajectorys")
    expect(main).not_to_contain_text("batchs")
    screenshot(page, "admin-index")


def page_overflow(page) -> int:
    """How many pixels the page is wider than the window (0: no sideways scrolling)."""
    return page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")


def test_the_queue_fits_768_px_and_the_review_panel_is_above_the_steps(new_page, lead, project, demo_trajectories):
    page = new_page((768, 1000))
    login(page, lead.username, PASSWORD)
    page.goto(f"/p/{project.slug}/trajectories/")
    expect(page.locator("table.queue")).to_be_visible()
    assert page_overflow(page) <= 0
    screenshot(page, "queue-768")
    t = by_external_id(demo_trajectories, "demo-weather")
    page.goto(f"/t/{t.pk}/")
    review = page.locator("#workflow")
    first_step = page.locator("#step-0-0")
    assert review.bounding_box()["y"] < first_step.bounding_box()["y"]
    assert page_overflow(page) <= 0
    screenshot(page, "editor-768")
    page.set_viewport_size({"width": 1366, "height": 900})
    box, step_box = review.bounding_box(), first_step.bounding_box()
    assert box["x"] > step_box["x"] + step_box["width"] - 1  # beside the steps on a wide screen
    screenshot(page, "editor-1366")


def test_a_lead_rejects_ticked_rows_from_the_queue_after_confirming(new_page, lead, annotator, project,
                                                                    demo_trajectories):
    waiting = [t.pk for t in demo_trajectories[:3]]
    Trajectory.objects.filter(pk__in=waiting).update(status="submitted", assignee=annotator)
    page = new_page()
    login(page, lead.username, PASSWORD)
    page.goto(f"/p/{project.slug}/trajectories/?status=submitted")
    for pk in waiting[:2]:
        page.get_by_label(f"Select #{pk}", exact=True).check()
    page.locator("#bulk-actions input[name=comment]").fill("Label the failed call.")
    asked = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    page.get_by_role("button", name="Reject selected").click()
    page.wait_for_timeout(300)
    assert asked and "Reject the ticked trajectories?" in asked[0]
    assert Trajectory.objects.filter(pk__in=waiting, status="submitted").count() == 3  # dismissed: nothing moved
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Reject selected").click()
    expect(page.locator(".messages")).to_contain_text("Rejected 2 trajectories.")
    screenshot(page, "queue-bulk-rejected")
    assert sorted(Trajectory.objects.filter(status="rejected").values_list("pk", flat=True)) == waiting[:2]
    assert set(Trajectory.objects.filter(pk__in=waiting[:2]).values_list("reviewer_comment", flat=True)) == {
        "Label the failed call."}


def test_an_annotator_submits_ticked_rows_but_gets_no_lead_buttons(new_page, annotator, project, demo_trajectories):
    mine = [t.pk for t in demo_trajectories[2:4]]  # no findings block these
    Trajectory.objects.filter(pk__in=mine).update(assignee=annotator)
    page = new_page((768, 900))
    login(page, annotator.username, PASSWORD)
    page.goto(f"/p/{project.slug}/trajectories/?assignee=me")
    expect(page.get_by_role("button", name="Approve selected")).to_have_count(0)
    expect(page.get_by_role("button", name="Assign selected")).to_have_count(0)
    page.locator("[data-select-all]").check()
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Submit selected").click()
    expect(page.locator(".messages")).to_contain_text("Submitted 2 trajectories.")
    assert page_overflow(page) <= 0
    screenshot(page, "queue-bulk-submitted-768")
