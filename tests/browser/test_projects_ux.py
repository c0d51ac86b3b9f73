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


def test_staff_create_a_project_see_getting_started_and_manage_members_without_the_admin(page, make_user, annotator):
    from annotate.models import Project

    staff = make_user("sam")
    staff.is_staff = True
    staff.save()
    login(page, "sam", PASSWORD)
    page.get_by_role("link", name="New project").click()
    both_widths(page, "projects-new")
    page.get_by_label("Name").fill("Flight helper")
    page.get_by_role("button", name="Create the project").click()
    page.wait_for_url("**/p/flight-helper/")
    steps = page.locator("#getting-started .gs-step")
    expect(steps).to_have_count(5)
    assert [steps.nth(i).get_attribute("data-step") for i in range(5)] == [
        "import", "annotate", "snapshot", "train", "evaluate"]
    hrefs = [steps.nth(i).locator("a").get_attribute("href") for i in range(5)]
    assert hrefs == ["/p/flight-helper/import/", "/p/flight-helper/trajectories/",
                     "/training/p/flight-helper/snapshots/new/", "/training/p/flight-helper/runs/new/",
                     "/evaluation/p/flight-helper/new/"]
    expect(page.locator("#getting-started .gs-next")).to_have_attribute("data-step", "import")
    both_widths(page, "projects-getting-started")

    page.locator("#getting-started").get_by_role("link", name="Settings").click()
    page.get_by_label("Add a member (username or e-mail)").fill("nobody@example.org")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator("#field-user-error, .add-member .field-errors")).to_contain_text("no user with the username")
    expect(page.get_by_label("Add a member (username or e-mail)")).to_have_value("nobody@example.org")
    page.get_by_label("Add a member (username or e-mail)").fill(annotator.username)
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator("tr[data-member=ann]")).to_contain_text("Annotator")
    expect(page.locator("tr[data-member=sam]")).to_contain_text("the only lead")
    page.get_by_label("Role of ann").select_option("lead")
    page.locator("tr[data-member=ann]").get_by_role("button", name="Change role").click()
    expect(page.locator(".messages")).to_contain_text("ann is now lead")
    page.get_by_role("button", name="Remove ann").click()
    expect(page.locator("tr[data-member=ann]")).to_have_count(0)
    page.get_by_label("Guidelines").fill("Ask for the date before searching flights.")
    page.get_by_role("button", name="Save general settings").click()
    expect(page.locator(".messages")).to_contain_text("Saved guidelines.")
    both_widths(page, "projects-settings")
    project = Project.objects.get(slug="flight-helper")
    assert project.guidelines == "Ask for the date before searching flights."
    assert list(project.memberships.values_list("user__username", "role")) == [("sam", "lead")]
