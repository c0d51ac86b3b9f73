"""The conflict view a user can read: the two versions of what conflicted side by side, each
readable on its own with the differing words marked, and only the field that conflicted quoted.

Screenshots land in var/screenshots/conflict-*.png.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import login, screenshot
from tests.browser.test_workbench import by_external_id
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

THEIR_TEXT = "Paris: 18 °C, cloudy, light wind from the west."
THEIR_NOTE = "The answer should give the temperature first."
MY_NOTE = "The answer is grounded in the tool result."


def test_a_note_conflict_shows_the_two_notes_side_by_side_and_not_the_message(new_page, lead, annotator, project,
                                                                               demo_trajectories):
    t = by_external_id(demo_trajectories, "demo-weather")
    first, second = new_page(), new_page()
    login(first, lead.username, PASSWORD)
    login(second, annotator.username, PASSWORD)
    first.goto(f"/t/{t.pk}/")
    second.goto(f"/t/{t.pk}/")

    # The lead rewrites the answer and notes it.
    answer = first.locator("#step-0-3")
    answer.locator("textarea[name=text]").fill(THEIR_TEXT)
    answer.get_by_label("Note").fill(THEIR_NOTE)
    answer.get_by_role("button", name="Save step").click()
    expect(first.locator("#step-0-3 .saved-mark")).to_be_visible()

    # The annotator, on the old version, only notes the answer: the note conflicts, the text does not.
    mine = second.locator("#step-0-3")
    mine.get_by_label("Note").fill(MY_NOTE)
    mine.get_by_role("button", name="Save step").click()
    conflict = second.locator("#step-0-3 .conflict")
    expect(conflict).to_contain_text("You both changed: note")
    pairs = conflict.locator(".version-pair")
    expect(pairs).to_have_count(1)
    assert pairs.get_attribute("data-field") == "note"
    # Each side reads as it was written: their note whole, mine whole, not words of both interleaved.
    expect(pairs.locator(".theirs .version-text")).to_have_text(THEIR_NOTE)
    expect(pairs.locator(".mine .version-text")).to_have_text(MY_NOTE)
    expect(pairs.locator(".theirs mark").first).to_be_visible()
    expect(conflict.locator(".versions")).not_to_contain_text("cloudy")  # the message text is not quoted there
    # Their change to the text, in the list of their changes, reads before and after, each whole.
    text_change = conflict.locator(".field-diff dt", has_text="text").locator("xpath=following-sibling::dd[1]")
    expect(text_change.locator(".side.after")).to_have_text("after " + THEIR_TEXT)
    conflict.scroll_into_view_if_needed()
    screenshot(second, "conflict-1-note")
    second.set_viewport_size({"width": 768, "height": 900})
    conflict.scroll_into_view_if_needed()
    screenshot(second, "conflict-1-note-768")
