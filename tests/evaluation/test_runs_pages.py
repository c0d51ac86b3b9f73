"""The evaluation pages and API through Django's test client (no worker): launch form, eval sets,
the dashboard, an item's drill-down, the loop back to curation, comparison, and who may do what."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from annotate.models import Pair, Trajectory
from evaluation import eval_sets, jobs
from evaluation.generate import GenerationSettings
from evaluation.models import AllowedEndpoint, EvalItemResult, EvalRun, EvalSet
from tests.conftest import PASSWORD
from tests.evaluation.runs_harness import fill_run, make_prompt_snapshot, prompt_snapshot_dir
from tests.training.jobs_harness import fast_users
from training.models import JobStatus


@pytest.fixture(autouse=True)
def _setup(settings, tmp_path, monkeypatch):
    fast_users(settings)
    settings.EVAL_RUNS_DIR = tmp_path / "eval-runs"
    monkeypatch.setattr("evaluation.tasks.eval_run.delay", lambda pk: None)  # no broker in these tests


@pytest.fixture
def snapshot(project, tiny_model_dir):
    return make_prompt_snapshot(project, prompt_snapshot_dir(tiny_model_dir))


@pytest.fixture
def eval_set(project, snapshot):
    return eval_sets.create_eval_set(project, EvalSet.SNAPSHOT, snapshot=snapshot, split="eval")


@pytest.fixture
def model_dir(tmp_path, settings):
    settings.MODEL_ROOTS = [*settings.MODEL_ROOTS, tmp_path]  # the admin lists it as a model root
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text("{}")
    return d


def new_run(eval_set, model_dir, name="base"):
    return jobs.launch_eval(project=eval_set.project, eval_set=eval_set, model_source=EvalRun.FOLDER, name=name,
                            model_path=str(model_dir), gen=GenerationSettings(), enqueue=False)


XSS = '<script>alert("pwned")</script> I cannot help.'
WRONG_CITY = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


@pytest.fixture
def finished(eval_set, model_dir):
    """A base run that fails two items (a wrong call; an injected script instead of asking) and an
    SFT-like run that gets everything right."""
    base = fill_run(new_run(eval_set, model_dir, "base"), {0: WRONG_CITY, 2: XSS})  # 2: should ask
    sft = fill_run(new_run(eval_set, model_dir, "sft"))
    return base, sft


def _client(client, user):
    assert client.login(username=user.username, password=PASSWORD)
    return client


def _form(es, model_dir, **over) -> dict:
    data = {"eval_set": es.pk, "model_source": "folder", "model_path": str(model_dir), "name": "",
            "limit": "", "max_new_tokens": "128", "batch_size": "4", "temperature": "0", "max_steps": "3",
            "concurrency": "8", "timeout": "60", "retries": "2", "device": "auto", "response_parser": "auto",
            "endpoint_url": "", "endpoint_model": ""}
    data.update(over)
    return data


def _field_errors(html: str, name: str) -> str:
    m = re.search(rf'id="field-{name}".*?</div>', html, re.S)
    return m.group(0) if m else ""


# --- launch ------------------------------------------------------------------------------------------

def test_a_lead_launches_an_evaluation_from_the_form(client, lead, eval_set, model_dir):
    c = _client(client, lead)
    url = reverse("evaluation:launch-run", args=["weather"])
    assert f'<option value="{eval_set.pk}"' in c.get(url).content.decode()
    page = c.post(url, _form(eval_set, model_dir, limit="3", max_new_tokens="64", name="base model"))
    run = EvalRun.objects.get()
    assert page.status_code == 302 and page["Location"] == reverse("evaluation:run-detail", args=[run.pk])
    assert (run.status, run.name, run.limit, run.total_items, run.created_by) == (JobStatus.QUEUED, "base model", 3, 3,
                                                                                 lead)
    assert run.settings["max_new_tokens"] == 64 and run.settings["max_steps"] == 3
    again = c.get(url).content.decode()  # the next launch starts from this one's choices
    assert 'name="max_new_tokens" value="64"' in again


@pytest.mark.parametrize("over, field, says", [
    ({"model_path": "/no/such/model"}, "model_path", "Not an allowed path"),
    ({"model_source": "endpoint", "endpoint_url": "ftp://x"}, "endpoint_url", "http:// or https://"),
    ({"model_source": "training_job"}, "training_job", "Choose a training run"),
    ({"max_new_tokens": "0"}, "max_new_tokens", "Between 1"),
    ({"temperature": "warm"}, "temperature", "Enter a number"),
    ({"eval_set": ""}, "eval_set", "This field is required"),
])
def test_bad_launch_values_get_field_errors_and_launch_nothing(client, lead, eval_set, model_dir, over, field, says):
    page = _client(client, lead).post(reverse("evaluation:launch-run", args=["weather"]),
                                      _form(eval_set, model_dir, **over))
    html = page.content.decode()
    assert page.status_code == 200 and says in _field_errors(html, field), html[:2000]
    assert not EvalRun.objects.exists()


def test_an_endpoint_run_is_launched_with_its_url_and_model_name(client, lead, eval_set, model_dir):
    AllowedEndpoint.objects.create(pattern="gpu-box:8000", allow_private=True)
    _client(client, lead).post(reverse("evaluation:launch-run", args=["weather"]), _form(
        eval_set, model_dir, model_source="endpoint", endpoint_url="http://gpu-box:8000/v1", endpoint_model="qwen"))
    run = EvalRun.objects.get()
    assert (run.model_source, run.endpoint_url, run.endpoint_model, run.model_path) == (
        "endpoint", "http://gpu-box:8000/v1", "qwen", "")
    assert run.model_label == "qwen @ http://gpu-box:8000/v1"


# --- eval sets -----------------------------------------------------------------------------------------

def test_a_lead_makes_eval_sets_from_a_snapshot_and_from_an_uploaded_file(client, lead, snapshot):
    from django.core.files.uploadedfile import SimpleUploadedFile

    c = _client(client, lead)
    url = reverse("evaluation:eval-sets", args=["weather"])
    page = c.post(url, {"source": "snapshot", "snapshot": snapshot.pk, "split": "eval", "name": ""}, follow=True)
    es = EvalSet.objects.get()
    assert es.item_count == 4 and f"Made eval set #{es.pk} (4 items)" in page.content.decode()
    record = {"question": "Weather in Oslo?", "correct": 0, "tools": [{"name": "get_weather"}],
              "candidates": [{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]},
                             {"answer": "Sunny."}]}
    upload = SimpleUploadedFile("qs.jsonl", json.dumps(record).encode())
    c.post(url, {"source": "candidates", "file": upload, "name": "oslo"})
    assert EvalSet.objects.get(name="oslo").item_count == 1
    bad = c.post(url, {"source": "candidates", "file": SimpleUploadedFile("qs.jsonl", b'{"candidates": []}')})
    assert "record 1 question: must be a non-empty string" in _field_errors(bad.content.decode(), "file")
    assert EvalSet.objects.count() == 2


def test_an_annotator_sees_eval_sets_but_cannot_make_one(client, annotator, eval_set, snapshot):
    c = _client(client, annotator)
    url = reverse("evaluation:eval-sets", args=["weather"])
    html = c.get(url).content.decode()
    assert eval_set.name in html and "eval-set-form" not in html
    assert c.post(url, {"source": "snapshot", "snapshot": snapshot.pk, "split": "eval"}).status_code == 403
    assert list(EvalSet.objects.all()) == [eval_set]


# --- the dashboard ---------------------------------------------------------------------------------------

def test_the_dashboard_shows_metrics_with_intervals_case_types_labels_and_decisions(client, lead, finished):
    base, _ = finished
    html = _client(client, lead).get(reverse("evaluation:run-detail", args=[base.pk])).content.decode()
    correct = base.summary["overall"]["metrics"]["correct"]
    assert (correct["k"], correct["n"]) == (2, 4)
    row = re.search(r'<tr data-metric="correct">.*?</tr>', html, re.S).group(0)
    assert "50.0 %" in row and f"[{100 * correct['low']:.1f}, {100 * correct['high']:.1f}]" in row and "2/4" in row
    assert 'data-case-type="clarification"' in html and 'data-label="arg_value_error"' in html
    gold_ask = re.search(r'<tr data-gold="ask">.*?</tr>', html, re.S).group(0)
    assert 'class="miss nonzero" data-decision="decline">1<' in gold_ask  # asked? no: it declined
    assert "hx-trigger" not in html  # finished: no polling
    assert html.count('class="failed"') == 2 and html.count('class="passed"') == 2


def test_the_items_table_filters_to_failures_and_by_label(client, lead, finished):
    base, _ = finished
    c = _client(client, lead)
    url = reverse("evaluation:run-detail", args=[base.pk])
    failed = c.get(url + "?show=failed").content.decode()
    assert failed.count('data-position="') == 2 and 'class="passed"' not in failed
    by_label = c.get(url + "?label=arg_value_error").content.decode()
    assert re.findall(r'data-position="(\d+)"', by_label) == ["0"]
    assert re.findall(r'data-position="(\d+)"', failed) == ["0", "2"]


def test_a_running_dashboard_polls_and_fills_in_as_results_arrive(client, lead, eval_set, model_dir):
    run = new_run(eval_set, model_dir)
    EvalRun.objects.filter(pk=run.pk).update(status=JobStatus.RUNNING, total_items=4, message="Generating")
    c = _client(client, lead)
    url = reverse("evaluation:run-detail", args=[run.pk])
    html = c.get(url).content.decode()
    assert 'hx-trigger="every 2s"' in html and 'id="waiting"' in html and "0 of 4 items" in html
    item = eval_set.items.get(position=0)
    EvalItemResult.objects.create(run=run, set_item=item, position=0, item_id=item.item_id, correct=True,
                                  score={"item_id": item.item_id, "case_types": ["tool_required"], "decision": "call",
                                         "gold_decision": "call", "metrics": {"correct": True, "format_ok": True},
                                         "labels": [], "reasons": []})
    EvalRun.objects.filter(pk=run.pk).update(done_items=1, progress=0.25)
    partial = c.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert partial.lstrip().startswith('<section id="live"') and "<html" not in partial
    assert "1 of 4 items" in partial and 'data-metric="correct"' in partial and "1/1" in partial
    # The page polls with its version: nothing new since then is a 204, and htmx keeps the page.
    poll = re.search(r'hx-get="([^"]+)"', partial).group(1).replace("&amp;", "&")
    assert c.get(poll, HTTP_HX_REQUEST="true").status_code == 204
    EvalRun.objects.filter(pk=run.pk).update(done_items=2, progress=0.5)
    assert "2 of 4 items" in c.get(poll, HTTP_HX_REQUEST="true").content.decode()


def test_model_output_is_shown_escaped_on_every_page(client, lead, finished):
    base, _ = finished
    c = _client(client, lead)
    for url in (reverse("evaluation:run-detail", args=[base.pk]), reverse("evaluation:item-detail", args=[base.pk, 2])):
        html = c.get(url).content.decode()
        assert '<script>alert("pwned")</script>' not in html
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in html


def test_an_item_shows_the_prompt_the_output_the_parsed_calls_and_the_gold(client, lead, finished):
    base, _ = finished
    html = _client(client, lead).get(reverse("evaluation:item-detail", args=[base.pk, 0])).content.decode()
    raw = re.search(r'id="raw-output">(.*?)</pre>', html, re.S).group(1)
    assert "get_weather" in raw and "Paris" in raw
    parsed = re.search(r'id="parsed">(.*?)</div>\s*</section>', html, re.S).group(1)
    assert "<b>get_weather</b>" in parsed and "&quot;city&quot;: &quot;Paris&quot;" in parsed
    gold = re.search(r'id="gold">(.*?)<h3>Scores', html, re.S).group(1)
    assert "&quot;Oslo&quot;" in gold and "&quot;Rome&quot;" in gold
    assert 'id="prompt-text"' in html and "arg_value_error" in html and 'id="item-verdict">failed' in html
    assert 'id="send-to-annotation"' in html and 'id="make-pair"' in html and 'id="next-item"' in html


def test_a_lead_sends_a_failure_to_annotation_and_makes_a_pair_from_the_item_page(client, lead, finished):
    from annotate.models import Pair, Trajectory

    base, _ = finished
    c = _client(client, lead)
    sent = c.post(reverse("evaluation:send-to-annotation", args=[base.pk, 0]), follow=True).content.decode()
    traj = Trajectory.objects.get(source="evaluation")
    assert f"draft trajectory #{traj.pk}" in sent and f'href="/t/{traj.pk}/"' in sent
    made = c.post(reverse("evaluation:make-pair", args=[base.pk, 0]), follow=True).content.decode()
    pair = Pair.objects.get()
    assert f"draft pair #{pair.pk}" in made and pair.source == "evaluation" and 'id="made-pair"' in made
    nothing = c.post(reverse("evaluation:make-pair", args=[base.pk, 3]), follow=True).content.decode()
    assert "Could not make a pair" in nothing and "identical" in nothing  # a correct item


def test_annotators_view_dashboards_but_cannot_launch_cancel_or_send(client, annotator, finished, eval_set, model_dir):
    base, _ = finished
    c = _client(client, annotator)
    runs = c.get(reverse("evaluation:run-list", args=["weather"])).content.decode()
    assert f"#{base.pk} base" in runs and "New evaluation" not in runs
    item = c.get(reverse("evaluation:item-detail", args=[base.pk, 0])).content.decode()
    assert 'id="raw-output"' in item and 'id="send-to-annotation"' not in item and 'id="make-pair"' not in item
    trajectories, pairs, status = Trajectory.objects.count(), Pair.objects.count(), base.status
    for url in (reverse("evaluation:send-to-annotation", args=[base.pk, 0]),
                reverse("evaluation:make-pair", args=[base.pk, 0]), reverse("evaluation:cancel-run", args=[base.pk]),
                reverse("evaluation:launch-run", args=["weather"])):
        assert c.post(url, _form(eval_set, model_dir)).status_code == 403, url
    assert EvalRun.objects.count() == 2
    base.refresh_from_db()
    assert (Trajectory.objects.count(), Pair.objects.count(), base.status) == (trajectories, pairs, status)


def test_an_outsider_gets_not_found(client, outsider, finished):
    base, _ = finished
    c = _client(client, outsider)
    for url in (reverse("evaluation:run-list", args=["weather"]), reverse("evaluation:run-detail", args=[base.pk]),
                reverse("evaluation:item-detail", args=[base.pk, 0]),
                reverse("evaluation:compare-runs", args=["weather"]) + f"?runs={base.pk}"):
        assert c.get(url).status_code == 404, url


def test_a_lead_cancels_a_queued_evaluation(client, lead, eval_set, model_dir):
    run = new_run(eval_set, model_dir)
    page = _client(client, lead).post(reverse("evaluation:cancel-run", args=[run.pk]), follow=True)
    run.refresh_from_db()
    assert run.status == JobStatus.CANCELLED and "Cancelled" in page.content.decode()


def test_runs_compare_side_by_side(client, lead, finished):
    base, sft = finished
    c = _client(client, lead)
    listing = c.get(reverse("evaluation:run-list", args=["weather"])).content.decode()
    assert 'name="runs"' in listing and "compare-runs" in listing
    url = reverse("evaluation:compare-runs", args=["weather"]) + f"?runs={base.pk}&runs={sft.pk}"
    html = c.get(url).content.decode()
    row = re.search(r'<tr data-metric="correct">.*?</tr>', html, re.S).group(0)
    assert row.index("50.0 %") < row.index("100.0 %")  # base, then SFT
    assert f"#{base.pk} base" in html and f"#{sft.pk} sft" in html and "<svg" in html
    labels = re.search(r'<tr data-label="arg_value_error">.*?</tr>', html, re.S).group(0)
    assert "1/4" in labels and "0/4" in labels
    assert 'id="different-sets"' not in html


# --- the API ---------------------------------------------------------------------------------------------

def test_the_api_launches_lists_and_reads_runs_with_their_summary(client, lead, eval_set, model_dir, finished):
    base, _ = finished
    AllowedEndpoint.objects.create(pattern="box:8000")
    c = _client(client, lead)
    made = c.post(reverse("evaluation:api-eval-runs", args=["weather"]), {
        "eval_set": eval_set.pk, "model_source": "endpoint", "endpoint_url": "http://box:8000/v1",
        "settings": {"max_new_tokens": 32}, "limit": 2}, content_type="application/json")
    assert made.status_code == 201 and made.json()["settings"]["max_new_tokens"] == 32 and made.json()["limit"] == 2
    bad = c.post(reverse("evaluation:api-eval-runs", args=["weather"]), {
        "eval_set": eval_set.pk, "model_source": "endpoint", "endpoint_url": "box", "settings": {"beams": 2}},
        content_type="application/json")
    assert bad.status_code == 400 and "unknown setting" in bad.json()["settings"][0]
    detail = c.get(reverse("evaluation:api-eval-run", args=[base.pk])).json()
    assert detail["summary"]["overall"]["metrics"]["correct"]["k"] == 2
    failed = c.get(reverse("evaluation:api-eval-run-items", args=[base.pk]) + "?failed=1").json()
    assert [r["position"] for r in failed["results"]] == [0, 2]
    pair = c.post(reverse("evaluation:api-eval-make-pair", args=[base.pk, 0]))
    again = c.post(reverse("evaluation:api-eval-make-pair", args=[base.pk, 0]))
    assert pair.status_code == 201 and again.status_code == 200 and again.json()["id"] == pair.json()["id"]


def test_the_api_makes_an_eval_set_and_refuses_annotators(client, lead, annotator, snapshot):
    from django.test import Client

    c = _client(client, lead)
    made = c.post(reverse("evaluation:api-eval-sets", args=["weather"]),
                  {"source": "snapshot", "snapshot": snapshot.pk, "split": "eval"}, content_type="application/json")
    assert made.status_code == 201 and made.json()["item_count"] == 4
    other = _client(Client(), annotator)
    assert other.get(reverse("evaluation:api-eval-sets", args=["weather"])).status_code == 200
    assert other.post(reverse("evaluation:api-eval-sets", args=["weather"]), {"source": "snapshot"},
                      content_type="application/json").status_code == 403
    assert EvalSet.objects.count() == 1
    assert Client().get(reverse("evaluation:api-eval-sets", args=["weather"])).status_code in (401, 403)
