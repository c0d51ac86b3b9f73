"""The import page as a new lead meets it: it says what it takes (with an example and the format
table), and a binary upload is one clear problem, not thousands of per-line UTF-8 errors.

Screenshots land in var/screenshots/import-*.png.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import login, screenshot
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def png(size: int = 3_000_000) -> bytes:
    """A PNG header and 3 MB of image-like bytes (the issue's case: a screenshot uploaded by mistake)."""
    return b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes((i * 7919 + (i >> 8)) % 256 for i in range(size))


def test_the_import_page_says_what_it_takes_with_an_example_and_the_table(new_page, lead, project):
    page = new_page()
    login(page, lead.username, PASSWORD)
    page.goto(f"/p/{project.slug}/import/")
    help_ = page.locator("#import-help")
    expect(help_).to_contain_text("JSON Lines")
    expect(help_.locator("code", has_text="sharegpt")).to_be_visible()
    expect(help_.locator("pre.example")).to_contain_text('"turns"')
    screenshot(page, "import-0-help")
    page.set_viewport_size({"width": 768, "height": 900})
    screenshot(page, "import-0-help-768")
    help_.get_by_role("link", name="Every format with its detection rule and an example").click()
    expect(page.locator("h1")).to_have_text("Import formats")
    expect(page.locator("#format-messages")).to_contain_text("tool_calls")
    screenshot(page, "import-1-formats-768")
    page.set_viewport_size({"width": 1366, "height": 900})
    screenshot(page, "import-1-formats")


@pytest.mark.parametrize("action", ["Preview", "Import without preview"])
def test_a_png_upload_is_one_problem_saying_it_is_not_a_text_file(new_page, lead, project, action):
    page = new_page()
    login(page, lead.username, PASSWORD)
    page.goto(f"/p/{project.slug}/import/")
    page.set_input_files("input[name=file]", files=[{"name": "screenshot.png", "mimeType": "image/png",
                                                     "buffer": png()}])
    page.get_by_role("button", name=action, exact=True).click()
    section = page.locator("#import-preview, #import-report")
    expect(section.locator("table tr")).to_have_count(2)  # the header and one problem
    expect(section).to_contain_text("this is not a text file (looks like a PNG image)")
    expect(section).not_to_contain_text("not UTF-8")
    expect(section).not_to_contain_text("skip invalid")
    expect(section).not_to_contain_text("more.")
    screenshot(page, f"import-2-png-{'preview' if action == 'Preview' else 'import'}")
