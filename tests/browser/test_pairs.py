"""In Chromium: a lead forks a trajectory at a tool call, uses the "unnecessary call" starter, edits the
rejected side, saves, approves; the pair is in the next DPO snapshot. Screenshots in var/screenshots/."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from annotate.models import Pair
from tests.browser.conftest import login, screenshot
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_a_lead_builds_an_unnecessary_call_pair_and_it_reaches_the_dpo_snapshot(page, lead, demo_trajectories,
                                                                                 tiny_model_dir):
    multi = next(t for t in demo_trajectories if t.external_id == "demo-multi-turn")
    login(page, lead.username, PASSWORD)
    page.goto(f"/t/{multi.pk}/")
    # Turn 2, step 2 is the convert_currency call: fork there.
    page.locator("#step-1-1 .fork-here").click()
    page.wait_for_url(f"**/t/{multi.pk}/fork/1/1/")
    expect(page.get_by_text("Shared context")).to_be_visible()
    expect(page.get_by_text("The two sides are identical")).to_be_visible()
    screenshot(page, "pairs-1-forked")

    page.get_by_role("button", name="Save pair").click()  # both sides still the same
    expect(page.locator("#pair-errors")).to_contain_text("chosen and rejected are identical")

    page.select_option("#pair-starter", "tool_not_needed")
    page.get_by_role("button", name="Fill the rejected side").click()
    rejected = page.locator("#rejected-side")
    expect(rejected.locator("fieldset.pair-step")).to_have_count(1)  # htmx swapped the builder in place
    expect(page.locator("#pair-category")).to_have_value("tool_not_needed")
    expect(rejected.get_by_text("name, arguments differ")).to_be_visible()

    # The starter picked a tool the chosen side does not use; the lead writes the guessed argument.
    expect(rejected.locator("select").first).to_have_value("get_weather")
    args = rejected.get_by_label("rejected step 1 arguments")
    args.fill('{"city": "Seattle"}')
    args.blur()
    page.locator("#pair-diff").get_by_text('{"city": "Seattle"}').wait_for()  # the diff follows the edit
    screenshot(page, "pairs-2-starter-edited")

    page.get_by_role("button", name="Save pair").click()
    page.wait_for_url("**/pairs/*/")
    expect(page.locator("#pair-status")).to_have_text("Draft")
    screenshot(page, "pairs-3-saved")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("#pair-status")).to_have_text("Approved")
    pair = Pair.objects.get()
    assert (pair.category, pair.status, pair.reviewer, pair.cut_turn, pair.cut_step) == (
        "tool_not_needed", "approved", lead, 1, 1)
    assert pair.rejected == [{"kind": "tool_call", "name": "get_weather", "call_id": pair.rejected[0]["call_id"],
                              "arguments": {"city": "Seattle"}}]

    page.goto("/p/weather/pairs/export/")
    page.fill("input[name=tokenizer]", str(tiny_model_dir))
    page.get_by_role("button", name="Create the DPO snapshot").click()
    page.wait_for_load_state("networkidle")
    screenshot(page, "pairs-4-exported")
    from training.models import Snapshot
    from training.snapshots import claim, run_snapshot_export

    snap = Snapshot.objects.get(kind="dpo")
    expect(page.get_by_text(f"snapshot {snap.pk}").first).to_be_visible()
    assert list(snap.pairs.values_list("source_id", flat=True)) == [pair.pk]
    if claim(snap.pk):  # no worker runs in tests: export here, as the worker would
        snap = run_snapshot_export(snap)
    rows = [json.loads(x) for x in (snap.out_dir and open(f"{snap.out_dir}/train.jsonl").read().splitlines())]
    [row] = rows
    [call] = row["rejected"][0]["tool_calls"]
    arguments = call["function"]["arguments"]
    assert call["function"]["name"] == "get_weather"
    assert (json.loads(arguments) if isinstance(arguments, str) else arguments) == {"city": "Seattle"}
    assert any(m["role"] == "tool" for m in row["prompt"])  # turn 1's flight search result


def test_a_correction_in_the_editor_becomes_a_suggested_pair_a_lead_accepts(new_page, lead, annotator,
                                                                            demo_trajectories):
    tokyo = next(t for t in demo_trajectories if t.external_id == "demo-needs-fixing")
    page = new_page()
    login(page, annotator.username, PASSWORD)
    page.goto(f"/t/{tokyo.pk}/")
    call = page.locator("#step-0-0")
    call.locator("[name='arg:city']").fill("Tokyo")
    call.locator("[name='arg:__other__']").fill("")  # drop the made-up "location" argument
    call.get_by_role("button", name="Save step").click()
    expect(page.locator("#step-0-0 .saved-mark")).to_be_visible()
    tokyo.refresh_from_db()
    assert tokyo.version == 2

    page = new_page()
    login(page, lead.username, PASSWORD)
    page.goto("/p/weather/pairs/suggestions/")
    card = page.locator(".suggestion").first
    expect(card).to_contain_text("Weather in Tokyo in fahrenheit?")
    expect(card).to_contain_text('get_weather {"location": "Tokyo", "unit": "fahrenheit"}')  # rejected: the original
    expect(card.locator("tr.diff-changed td").first).to_contain_text('"city": "Tokyo"')  # chosen: the correction
    screenshot(page, "pairs-5-suggestion")
    card.get_by_role("button", name="Accept").click()
    expect(page.get_by_text("Accepted 1 suggestion as approved pairs")).to_be_visible()
    pair = Pair.objects.get()
    assert (pair.source, pair.status, pair.author, pair.reviewer, pair.cut_turn, pair.cut_step) == (
        "correction", "approved", annotator, lead, 0, 0)
    assert pair.context["turns"] == [{"user": "Weather in Tokyo in fahrenheit?", "steps": []}]
    page.goto("/p/weather/pairs/dashboard/")
    expect(page.locator("#by-category")).to_contain_text("Format")
    screenshot(page, "pairs-6-dashboard")
