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
