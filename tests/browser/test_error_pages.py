"""Error pages a user can act on: the reason, a link back and the nav, for 400 / 403 / 404 / 500.

Screenshots land in var/screenshots/error-*.png.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import login, screenshot
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_annotator_on_a_lead_page_reads_why_and_can_go_back(new_page, annotator, project):
    page = new_page()
    login(page, annotator.username, PASSWORD)
    page.goto(f"/p/{project.slug}/")
    response = page.goto(f"/p/{project.slug}/import/")
    assert response.status == 403
    expect(page.locator("h1")).to_have_text("You may not do this")
    expect(page.locator(".error-reason")).to_have_text("This needs the lead role in Weather bot.")
    expect(page.locator("header nav")).to_contain_text("Projects")  # the nav, with the user logged in
    expect(page.locator("header .who")).to_contain_text(annotator.username)
    screenshot(page, "error-403")
    page.set_viewport_size({"width": 768, "height": 900})
    screenshot(page, "error-403-768")
    page.get_by_role("link", name="← Go back").click()
    page.wait_for_url(f"**/p/{project.slug}/")


def test_a_missing_page_says_so_with_the_nav(new_page, lead, project):
    page = new_page((768, 900))
    login(page, lead.username, PASSWORD)
    response = page.goto("/t/999999/")
    assert response.status == 404
    expect(page.locator("h1")).to_have_text("Nothing here")
    expect(page.locator(".error-reason")).to_have_text(
        "There is no trajectory at this address: it may have been deleted, or the link is wrong.")
    expect(page.get_by_role("link", name="All projects")).to_be_visible()
    expect(page.locator("header nav")).to_contain_text("Projects")
    screenshot(page, "error-404-768")
    response = page.goto("/no/such/address/")
    assert response.status == 404
    expect(page.locator(".error-reason")).to_contain_text("There is no page at this address")
    expect(page.locator("body")).not_to_contain_text("Resolver404")
    page.set_viewport_size({"width": 1366, "height": 800})
    screenshot(page, "error-404")


def test_a_server_error_shows_no_internals_and_a_way_back(new_page, lead, project, settings):
    settings.ROOT_URLCONF = "tests.browser.boom_urls"
    settings.DEBUG = False
    page = new_page()
    login(page, lead.username, PASSWORD)
    response = page.goto("/boom/")
    assert response.status == 500
    expect(page.locator("h1")).to_have_text("Something went wrong on our side")
    expect(page.locator("body")).not_to_contain_text("secret-internal-detail")
    expect(page.locator("body")).not_to_contain_text("RuntimeError")
    expect(page.locator("header nav")).to_contain_text("Projects")
    expect(page.get_by_role("link", name="All projects")).to_be_visible()
    screenshot(page, "error-500")
    page.set_viewport_size({"width": 768, "height": 900})
    screenshot(page, "error-500-768")


def test_a_bad_request_has_the_friendly_page(new_page, lead, project, settings):
    settings.ROOT_URLCONF = "tests.browser.boom_urls"
    page = new_page()
    login(page, lead.username, PASSWORD)
    # A query string with more fields than DATA_UPLOAD_MAX_NUMBER_FIELDS is refused as a 400.
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
    response = page.goto(f"/p/{project.slug}/trajectories/?" + "&".join(f"q{i}=x" for i in range(10)))
    assert response.status == 400
    expect(page.locator("h1")).to_have_text("This request could not be read")
    expect(page.get_by_role("link", name="← Go back")).to_be_visible()
    expect(page.locator("body")).not_to_contain_text("DATA_UPLOAD_MAX_NUMBER_FIELDS")


def test_an_expired_form_says_what_to_do_instead_of_csrf_jargon(new_page, lead, project):
    page = new_page()
    login(page, lead.username, PASSWORD)
    page.goto(f"/p/{project.slug}/trajectories/")
    # The security cookie is gone (another tab logged out and in, the browser dropped it).
    page.context.clear_cookies(name="csrftoken")
    with page.expect_navigation():
        page.get_by_role("button", name="Next to review →").click()
    expect(page.locator("h1")).to_have_text("This form has expired")
    expect(page.locator(".error-reason")).to_contain_text("Go back, reload the page and send it again")
    expect(page.locator("body")).not_to_contain_text("CSRF verification failed")
    screenshot(page, "error-403-csrf")
