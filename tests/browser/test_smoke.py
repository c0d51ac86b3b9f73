"""Smoke test in a real Chromium: each role logs in and sees the project; a lead uploads a file."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import login, screenshot
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_each_role_logs_in_and_sees_the_project(new_page, admin_user_, lead, annotator, demo_trajectories):
    for user in (admin_user_, lead, annotator):
        page = new_page()
        login(page, user.username, PASSWORD)
        expect(page.get_by_role("heading", name="Projects")).to_be_visible()
        page.get_by_text("Weather bot").first.click()
        page.wait_for_url("**/p/weather/")
        expect(page.get_by_text(f"{len(demo_trajectories)}").first).to_be_visible()
        screenshot(page, f"smoke-project-{user.username}")
        # Only leads (and admins) see the import button.
        if user == annotator:
            expect(page.get_by_role("link", name="Import")).to_have_count(0)
        else:
            expect(page.get_by_role("link", name="Import").first).to_be_visible()


def test_a_lead_uploads_a_file_and_sees_the_trajectories(page, lead, project, tmp_path):
    records = [{"turns": [{"user": f"What's the weather in city {i}?",
                           "assistant_tool": {"name": "get_weather", "arguments": {"city": f"City {i}"}},
                           "tool_result": '{"temp": 20}', "assistant_answer": "20 degrees."}]} for i in range(3)]
    f = tmp_path / "upload.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in records))
    login(page, lead.username, PASSWORD)
    page.goto(f"/p/{project.slug}/import/")
    page.set_input_files("input[name=file]", str(f))
    screenshot(page, "smoke-import-form")
    page.get_by_role("button", name="Preview", exact=True).click()
    page.wait_for_load_state("networkidle")
    preview = page.locator("#import-preview")
    expect(preview.get_by_text("nothing is written yet")).to_be_visible()
    expect(preview.get_by_text("get_weather", exact=False).first).to_be_visible()
    assert project.trajectories.count() == 0
    screenshot(page, "smoke-import-preview")
    preview.get_by_role("button", name="Import 3 trajectories").click()
    page.wait_for_load_state("networkidle")
    expect(page.get_by_text("Imported 3 trajectories")).to_be_visible()
    expect(page.get_by_text("What's the weather in city 2?")).to_be_visible()
    screenshot(page, "smoke-after-import")


def test_a_bad_upload_shows_the_line_and_imports_nothing(page, lead, project, tmp_path):
    f = tmp_path / "broken.jsonl"
    f.write_text('{"turns": [{"user": "ok", "assistant_answer": "fine"}]}\n{"turns": [\n')
    login(page, lead.username, PASSWORD)
    page.goto(f"/p/{project.slug}/import/")
    page.set_input_files("input[name=file]", str(f))
    page.get_by_role("button", name="Import without preview").click()
    page.wait_for_load_state("networkidle")
    report = page.locator("#import-report")
    expect(report.get_by_text("Nothing was imported")).to_be_visible()
    expect(report.get_by_text("broken.jsonl").first).to_be_visible()
    screenshot(page, "smoke-import-error")
    assert project.trajectories.count() == 0
