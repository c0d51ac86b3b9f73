"""The workbench in a real Chromium: an annotator fixes a trajectory and submits it, a lead
approves it; two people editing the same step; an XSS payload in a tool result.

Screenshots land in var/screenshots/workbench-*.png.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from annotate.models import Trajectory
from annotate.workbench.documents import current_document
from tests.browser.conftest import login, screenshot
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def by_external_id(trajectories, external_id):
    return next(t for t in trajectories if t.external_id == external_id)


def fresh_doc(t):
    t.refresh_from_db()
    return current_document(t)


def test_an_annotator_fixes_a_call_labels_a_step_and_submits_then_a_lead_approves(
        new_page, lead, annotator, project, demo_trajectories):
    t = by_external_id(demo_trajectories, "demo-needs-fixing")
    Trajectory.objects.filter(pk=t.pk).update(assignee=annotator)
    page = new_page()
    login(page, annotator.username, PASSWORD)
    page.goto(f"/p/{project.slug}/")
    expect(page.locator("#coverage")).to_contain_text("Clarification needed")
    screenshot(page, "workbench-0-dashboard")
    page.get_by_role("button", name="Next in my queue").click()
    page.wait_for_url(f"**/t/{t.pk}/")
    screenshot(page, "workbench-1-editor")

    call = page.locator("#step-0-0")
    city = call.get_by_label("city")
    other = call.locator("textarea[name='arg:__other__']")
    city_errors = call.locator("#argerr-0-0-0")
    other_errors = call.locator("#argerr-0-0-2")
    # Invalid arguments: the required city is empty, and the extra argument becomes broken JSON.
    expect(city_errors).to_have_text("'city' is a required property")
    other.fill('{"location": ')
    expect(other_errors).to_contain_text("Not valid JSON")
    expect(call.locator("#argstatus-0-0")).to_contain_text("2 problems")
    screenshot(page, "workbench-2-argument-errors")
    # Saving unreadable JSON is refused, and what was typed stays.
    call.get_by_role("button", name="Save step").click()
    expect(page.locator("#step-0-0 .form-errors")).to_contain_text("cannot be read")
    call = page.locator("#step-0-0")
    expect(call.locator("textarea[name='arg:__other__']")).to_have_value('{"location": ')
    # Fix them: the errors go away as the user types.
    call.get_by_label("city").fill("Tokyo")
    call.locator("textarea[name='arg:__other__']").fill("")
    expect(call.locator("#argstatus-0-0")).to_have_text("✓ matches the schema")
    expect(call.locator("#argerr-0-0-0")).to_be_empty()
    call.get_by_label("city").press("Control+s")  # the keyboard shortcut saves the step being edited
    expect(page.locator("#step-0-0 .saved-mark")).to_have_text("saved · v2")
    expect(page.locator("#findings-summary")).to_contain_text("No findings")

    # Label the answer: it is not grounded in the (failed) tool result.
    answer = page.locator("#step-0-2")
    answer.locator("details.labels summary").click()
    answer.get_by_label("ungrounded_answer").check()
    answer.get_by_label("Note").fill("The tool failed; the answer invents the weather.")
    answer.get_by_role("button", name="Save step").click()
    expect(page.locator("#step-0-2 .saved-mark")).to_have_text("saved · v3")
    expect(page.locator("#step-0-2 .step-head")).to_contain_text("ungrounded_answer")

    # Keyboard: the help overlay, and j / k between steps.
    page.locator("h1.title").click()
    page.keyboard.press("?")
    expect(page.locator("#help")).to_be_visible()
    screenshot(page, "workbench-3-shortcuts")
    page.keyboard.press("Escape")
    expect(page.locator("#help")).to_be_hidden()
    current = page.locator("[data-step].current")
    expect(current).to_have_id("step-0-2")  # the step just saved
    page.keyboard.press("k")
    expect(current).to_have_id("step-0-1")
    page.keyboard.press("k")
    expect(current).to_have_id("step-0-0")
    page.keyboard.press("j")
    expect(current).to_have_id("step-0-1")
    screenshot(page, "workbench-4-fixed")

    # Submit with the keyboard (it asks first), then move on with "n".
    page.once("dialog", lambda d: d.accept())
    page.keyboard.press("Control+Shift+Enter")
    page.wait_for_url(lambda url: f"/t/{t.pk}/" not in url)
    t.refresh_from_db()
    assert t.status == "submitted"
    after_submit = page.url
    page.locator("h1").first.click()
    page.keyboard.press("n")
    page.wait_for_url(lambda url: url != after_submit)
    doc = current_document(t)
    assert doc.turns[0].steps[0].arguments == {"city": "Tokyo", "unit": "fahrenheit"}
    assert doc.turns[0].steps[2].labels == ["ungrounded_answer"]

    # A lead reviews it from the dashboard and approves.
    review = new_page()
    login(review, lead.username, PASSWORD)
    review.goto(f"/p/{project.slug}/")
    review.get_by_role("button", name="Next to review").click()
    review.wait_for_url(f"**/t/{t.pk}/")
    expect(review.locator("#step-0-2 .step-head")).to_contain_text("ungrounded_answer")
    screenshot(review, "workbench-5-review")
    review.get_by_label("Comment for the annotator").fill("Good catch on the answer.")
    review.get_by_role("button", name="Approve").click()
    review.wait_for_load_state("networkidle")
    t.refresh_from_db()
    assert (t.status, t.reviewer_comment) == ("approved", "Good catch on the answer.")
    review.goto(f"/t/{t.pk}/history/")
    expect(review.locator("#v5")).to_contain_text("approved")
    screenshot(review, "workbench-6-history")


def test_a_second_editor_gets_the_conflict_view_and_loses_nothing(new_page, lead, annotator, project,
                                                                  demo_trajectories):
    t = by_external_id(demo_trajectories, "demo-weather")
    first, second = new_page(), new_page()
    login(first, lead.username, PASSWORD)
    login(second, annotator.username, PASSWORD)
    first.goto(f"/t/{t.pk}/")
    second.goto(f"/t/{t.pk}/")

    # The lead changes the reasoning and the answer and saves both.
    first.locator("#step-0-0 textarea[name=text]").fill("Current weather in Paris: get_weather.")
    first.locator("#step-0-0").get_by_role("button", name="Save step").click()
    expect(first.locator("#step-0-0 .saved-mark")).to_be_visible()
    first.locator("#step-0-3 textarea[name=text]").fill("Paris: 18 °C, cloudy.")
    first.locator("#step-0-3").get_by_role("button", name="Save step").click()
    expect(first.locator("#step-0-3 .saved-mark")).to_have_text("saved · v3")

    # The annotator, still on version 1, edits the same answer.
    mine = "It is 18 °C and cloudy in Paris right now (checked against the tool result)."
    answer = second.locator("#step-0-3")
    answer.locator("textarea[name=text]").fill(mine)
    answer.get_by_label("Note").fill("grounded")
    answer.get_by_role("button", name="Save step").click()
    conflict = second.locator("#step-0-3 .conflict")
    expect(conflict).to_contain_text("lena saved version 3 while you were editing version 1")
    expect(conflict).to_contain_text("You both changed: text")
    expect(second.locator("#step-0-3 textarea[name=text]")).to_have_value(mine)
    expect(second.locator("#step-0-3 input[name=note]")).to_have_value("grounded")
    second.locator("#step-0-3 .conflict").scroll_into_view_if_needed()
    screenshot(second, "workbench-7-conflict")
    assert fresh_doc(t).turns[0].steps[3].text == "Paris: 18 °C, cloudy."  # nothing overwritten unseen

    second.get_by_role("button", name="Merge: keep their changes and apply mine").click()
    expect(second.locator("#document .notice")).to_contain_text("Saved version 4 (merged)")
    doc = fresh_doc(t)
    assert doc.turns[0].steps[0].text == "Current weather in Paris: get_weather."  # theirs, kept
    assert (doc.turns[0].steps[3].text, doc.turns[0].steps[3].note) == (mine, "grounded")  # mine, kept
    expect(second.locator("#step-0-0 textarea[name=text]")).to_have_value("Current weather in Paris: get_weather.")
    screenshot(second, "workbench-8-merged")


XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'


def test_an_xss_payload_in_a_tool_result_runs_no_script(new_page, lead, project):
    from annotate.ingest.writer import write_trajectories
    from annotate.trajectory import Trajectory as Doc

    t = write_trajectories(project, [Doc.from_dict({"turns": [{"user": "Fetch the page " + XSS, "steps": [
        {"kind": "tool_call", "name": "fetch", "arguments": {"url": XSS}, "call_id": "c1"},
        {"kind": "tool_result", "name": "fetch", "text": XSS, "call_id": "c1", "note": XSS},
        {"kind": "answer", "text": "Done."}]}]})])[0]
    page = new_page()
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    login(page, lead.username, PASSWORD)
    page.goto(f"/t/{t.pk}/")
    expect(page.locator("#step-0-1 textarea[name=text]")).to_have_value(XSS)
    expect(page.locator("#turn-0 textarea")).to_have_value("Fetch the page " + XSS)
    # Saving swaps the step in with htmx: the payload must stay text there too.
    page.locator("#step-0-1 textarea[name=text]").fill(XSS + " (edited)")
    page.locator("#step-0-1").get_by_role("button", name="Save step").click()
    expect(page.locator("#step-0-1 .saved-mark")).to_be_visible()
    screenshot(page, "workbench-9-xss-editor")
    for url in (f"/t/{t.pk}/history/", f"/p/{project.slug}/trajectories/?q=xss"):
        page.goto(url)
        page.wait_for_load_state("networkidle")
    expect(page.get_by_text("Fetch the page <script>", exact=False)).to_be_visible()
    screenshot(page, "workbench-10-xss-queue")
    assert page.evaluate("() => window.__xss") is None
    expect(page.locator("img[src=x]")).to_have_count(0)
    assert dialogs == []
