"""In Chromium: the pair builder's category picks its starter, "ignore the tool result" works when forked
at the answer after a result, and the review note starts empty (issue 18, item 8)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from annotate.models import Pair
from annotate.pairs import services
from annotate.trajectory import Step
from tests.browser.conftest import login, screenshot
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _fork_weather_answer(page, demo_trajectories):
    weather = next(t for t in demo_trajectories if t.external_id == "demo-weather")
    page.goto(f"/t/{weather.pk}/")
    page.locator("#step-0-3 .fork-here").click()  # the answer, right after get_weather's result
    page.wait_for_url(f"**/t/{weather.pk}/fork/0/3/")


def test_picking_a_category_picks_its_starter_and_description(page, lead, demo_trajectories):
    login(page, lead.username, PASSWORD)
    _fork_weather_answer(page, demo_trajectories)
    expect(page.locator("#pair-starter")).to_have_value("other")
    page.select_option("#pair-category", "tool_result")
    expect(page.locator("#pair-starter")).to_have_value("tool_result")
    expect(page.locator("#pair-starter option:checked")).to_contain_text("Ignore the tool result")
    expect(page.locator("#category-description")).not_to_have_text("")
    screenshot(page, "pairs-ux-category-picks-starter")


def test_ignoring_the_tool_result_works_when_forked_at_the_answer(page, lead, demo_trajectories):
    login(page, lead.username, PASSWORD)
    _fork_weather_answer(page, demo_trajectories)
    page.select_option("#pair-category", "tool_result")
    page.get_by_role("button", name="Fill the rejected side").click()
    rejected = page.locator("#rejected-side")
    expect(rejected.locator("fieldset.pair-step")).to_have_count(1)
    expect(rejected.get_by_label("rejected step 1 text")).to_have_value(
        "I couldn't find anything useful, so I can't say for sure.")
    expect(page.locator("#pair-errors")).to_have_count(0)
    page.get_by_role("button", name="Save pair").click()
    page.wait_for_url("**/pairs/*/")
    pair = Pair.objects.get()
    assert (pair.category, pair.cut_turn, pair.cut_step) == ("tool_result", 0, 3)
    assert [s["kind"] for s in pair.rejected] == ["answer"]


def test_the_review_note_starts_empty_and_keeps_the_authors_note(page, lead, demo_trajectories):
    weather = next(t for t in demo_trajectories if t.external_id == "demo-weather")
    pair, revision = services.fork_trajectory(weather, 0, 3)
    pair.category, pair.note = "tool_result", "author: the answer should quote the temperature"
    pair.rejected = [Step(kind="answer", text="I don't know the weather there.")]
    row = services.save_pair(weather.project, pair, user=lead, row=None, trajectory=weather, revision=revision)
    login(page, lead.username, PASSWORD)
    page.goto(f"/pairs/{row.pk}/")
    note = page.get_by_label("Review note")
    expect(note).to_have_value("")
    note.fill("clear case")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("#pair-status")).to_have_text("Approved")
    expect(page.get_by_text("author: the answer should quote the temperature")).to_be_visible()
    expect(page.get_by_text("Review by lena: clear case")).to_be_visible()
    screenshot(page, "pairs-ux-reviewed")
    row.refresh_from_db()
    assert row.note == "author: the answer should quote the temperature\n\nReview by lena: clear case"
