"""In Chromium: a lead exports trajectories from the app (the CLI's file), and an annotator hears in the app
when work is assigned to them or rejected (issue 18, item 10). Screenshots at 1366 and 768 px in
var/screenshots/projects-*.png."""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from annotate.models import Trajectory
from annotate.workbench.transitions import transition
from tests.browser.conftest import login, screenshot
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def both_widths(page, name: str) -> None:
    for width in (1366, 768):
        page.set_viewport_size({"width": width, "height": 800})
        screenshot(page, f"{name}-{width}")
    page.set_viewport_size({"width": 1366, "height": 800})


def test_a_lead_downloads_the_projects_trajectories_from_the_settings_page(page, lead, project, demo_trajectories,
                                                                          tmp_path):
    login(page, lead.username, PASSWORD)
    page.goto(f"/p/{project.slug}/")
    page.locator("nav").get_by_role("link", name="Settings").click()
    page.get_by_role("link", name="Export trajectories").click()
    expect(page.get_by_label("Which trajectories")).to_contain_text(f"all ({len(demo_trajectories)})")
    page.get_by_label("messages").check()
    both_widths(page, "projects-export")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download JSONL").click()
    assert re.fullmatch(r"weather-any-messages-\d{8}-\d{4}\.jsonl", download.value.suggested_filename)
    got = tmp_path / "download.jsonl"
    download.value.save_as(got)
    cli = tmp_path / "cli.jsonl"
    call_command("export_trajectories", str(cli), project=project.slug, format="messages")
    assert got.read_text() == cli.read_text() and len(got.read_text().splitlines()) == len(demo_trajectories)


def test_an_annotator_is_told_of_assigned_and_rejected_work_in_the_nav(new_page, lead, annotator, project,
                                                                       demo_trajectories):
    weather = next(t for t in demo_trajectories if t.external_id == "demo-weather")
    lead_page = new_page()
    login(lead_page, lead.username, PASSWORD)
    lead_page.goto(f"/p/{project.slug}/trajectories/")
    lead_page.locator(f"#bulk-form input[name=ids][value='{weather.pk}']").check()
    lead_page.locator("#bulk-form select[name=assignee]").select_option(label=annotator.username)
    lead_page.locator("#bulk-form").get_by_role("button", name=re.compile("^Assign")).click()
    lead_page.wait_for_load_state("networkidle")
    expect(lead_page.locator("#notif-badge")).to_have_count(0)  # the lead does not hear of their own act

    page = new_page()
    login(page, annotator.username, PASSWORD)
    expect(page.locator("#notif-badge")).to_have_text("1")
    page.locator("#notifications-link").click()
    expect(page.locator(".notifications li.unread")).to_contain_text("lena assigned you a trajectory in Weather bot")
    both_widths(page, "projects-notifications")
    page.get_by_role("link", name=re.compile("lena assigned you")).click()
    page.wait_for_url(f"**/t/{weather.pk}/")
    expect(page.locator("#notif-badge")).to_have_count(0)  # read by opening it

    weather.refresh_from_db()
    transition(weather, "submit", user=annotator)
    transition(Trajectory.objects.get(pk=weather.pk), "reject", user=lead, comment="Say the unit: 18 °C.")
    page.goto(f"/p/{project.slug}/")
    expect(page.locator("#notif-badge")).to_have_text("1")
    page.locator("#notifications-link").click()
    expect(page.locator(".notifications li.unread")).to_contain_text("rejected")
    expect(page.locator(".notifications li.unread")).to_contain_text("Say the unit: 18 °C.")
    page.get_by_role("button", name=re.compile("Mark all 1 read")).click()
    expect(page.locator(".notifications li.unread")).to_have_count(0)
    expect(page.locator("#notif-badge")).to_have_count(0)
