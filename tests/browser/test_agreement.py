"""Overlap in a real Chromium: two annotators label the same trajectory blind, each is refused the
other's version, both submit, and the lead's agreement page shows the disagreement per label.

Screenshots land in var/screenshots/agreement-*.png (1366 and 768 px wide).
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from annotate.agreement import services
from annotate.agreement.models import OverlapVersion
from tests.browser.conftest import login, screenshot
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def eager_worker(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the refresh task runs in the live server's thread


def submit(page, pk):
    page.once("dialog", lambda d: d.accept())
    page.keyboard.press("Control+Shift+Enter")
    page.wait_for_url(lambda url: f"/t/{pk}/" not in url)


def test_two_annotators_label_blind_and_the_agreement_page_updates(new_page, make_user, lead, annotator, project,
                                                                  demo_trajectories):
    bea = make_user("bea", "annotator", project)
    conf = services.settings_for(project)
    conf.annotators = 2
    conf.save()
    services.create_versions(project, limit=1)

    ann_page = new_page()
    login(ann_page, annotator.username, PASSWORD)
    ann_page.goto(f"/p/{project.slug}/")
    ann_page.get_by_role("button", name="Next in my queue").click()
    ann_page.wait_for_url("**/t/*/")
    mine = OverlapVersion.objects.get(annotator=annotator).copy_id
    assert ann_page.url.endswith(f"/t/{mine}/")
    answer = ann_page.locator(".step.answer").first
    answer.locator("details.labels summary").click()
    answer.get_by_label("ungrounded_answer").check()
    answer.get_by_role("button", name="Save step").click()
    expect(answer.locator(".saved-mark")).to_contain_text("saved")

    bea_page = new_page()
    login(bea_page, bea.username, PASSWORD)
    bea_page.goto(f"/p/{project.slug}/")
    bea_page.get_by_role("button", name="Next in my queue").click()
    bea_page.wait_for_url("**/t/*/")
    theirs = OverlapVersion.objects.get(annotator=bea).copy_id
    assert theirs != mine and bea_page.url.endswith(f"/t/{theirs}/")
    # Blind: ann's version (labelled, not yet submitted) is refused to bea.
    response = bea_page.goto(f"/t/{mine}/")
    assert response.status == 403
    bea_page.goto(f"/t/{theirs}/")
    bea_page.locator("h1").first.click()
    submit(bea_page, theirs)

    ann_page.goto(f"/t/{mine}/")
    ann_page.locator("h1").first.click()
    submit(ann_page, mine)

    lead_page = new_page()
    login(lead_page, lead.username, PASSWORD)
    lead_page.goto(f"/p/{project.slug}/agreement/")
    expect(lead_page.locator("main, body").first).to_contain_text("annotators: ann, bea")
    row = lead_page.locator("tr", has_text="ungrounded_answer")
    expect(row).to_be_visible()
    expect(lead_page.locator("tr", has_text="ann · bea")).to_contain_text("1")
    screenshot(lead_page, "agreement-1366")
    narrow = new_page(viewport=(768, 900))
    login(narrow, lead.username, PASSWORD)
    narrow.goto(f"/p/{project.slug}/agreement/")
    screenshot(narrow, "agreement-768")
