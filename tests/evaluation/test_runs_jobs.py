"""Eval sets, launching, running a job (the worker side, with the runner in its subprocess), cancel,
the sweep, ``manage.py evaluate``, and failures sent back to annotation or made into pairs."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from annotate.formats.bfcl import to_trajectory as bfcl_trajectory
from annotate.pairs import PairError
from annotate.ingest.writer import write_trajectories
from evaluation import eval_sets, jobs
from evaluation.generate import GenerationSettings
from evaluation.items import EvalItem
from evaluation.models import EvalRun, EvalSet
from tests.evaluation.runs_harness import ChatServer, fill_run, make_prompt_snapshot, oracle, prompt_snapshot_dir
from tests.training.jobs_harness import fast_users, process_alive, wait_for
from jobs.rows import request_cancel
from training.models import JobStatus, TrainingJob


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


def endpoint_run(eval_set, server, **over):
    server.allow()
    kw = {"project": eval_set.project, "eval_set": eval_set, "model_source": EvalRun.ENDPOINT,
          "endpoint_url": server.url, "endpoint_model": "oracle", "gen": GenerationSettings(), "enqueue": False}
    kw.update(over)
    return jobs.launch_eval(**kw)


def set_items(eval_set) -> list[EvalItem]:
    return [EvalItem.from_dict(d) for d in eval_set.items.order_by("position").values_list("document", flat=True)]


# --- eval sets -----------------------------------------------------------------------------------

def test_an_eval_set_freezes_a_prompt_snapshots_split_with_its_gold(project, snapshot, tiny_model_dir):
    es = eval_sets.create_eval_set(project, EvalSet.SNAPSHOT, snapshot=snapshot, split="eval")
    rows = (Path(snapshot.out_dir) / "eval.jsonl").read_text().splitlines()
    assert es.item_count == len(rows) == es.items.count() and es.name == "demo prompts · eval"
    assert es.case_type_counts == {"tool_required": 2, "clarification": 1, "irrelevant_tools": 1}
    items = set_items(es)
    parallel = next(it for it in items if it.reference["decision"] == "call")
    assert [c["name"] for c in parallel.reference["calls"]] == ["get_weather", "get_weather"]
    assert len(parallel.replay) == 2 and parallel.final_reference["decision"] == "answer"  # what replay feeds
    train = eval_sets.create_eval_set(project, EvalSet.SNAPSHOT, snapshot=snapshot, split="train", name="train split")
    assert train.item_count > es.item_count and train.name == "train split"


def test_an_eval_set_from_imported_benchmark_trajectories_keeps_their_possible_answers(project):
    tools = [{"name": "area", "parameters": {"type": "dict", "properties": {"base": {"type": "float"},
                                                                           "height": {"type": "float"}},
                                            "required": ["base", "height"]}}]
    records = [
        ({"id": "simple_python_0", "question": [[{"role": "user", "content": "Area, base 10, height 5?"}]],
          "function": tools},
         {"id": "simple_python_0", "ground_truth": [{"area": {"base": [10], "height": [5, 5.0]}}]}),
        ({"id": "irrelevance_0", "question": [[{"role": "user", "content": "Who won in 1998?"}]], "function": tools},
         {"id": "irrelevance_0", "ground_truth": []}),
    ]
    rows = write_trajectories(project, [bfcl_trajectory(q, answer=a, source="bfcl") for q, a in records])
    es = eval_sets.create_eval_set(project, EvalSet.TRAJECTORIES, filters={"source": "bfcl"})
    items = set_items(es)
    assert [it.reference["decision"] for it in items] == ["call", "decline"]
    assert items[0].reference["acceptable"] == [{"area": {"base": [10], "height": [5, 5.0]}}]
    assert list(es.items.values_list("trajectory_id", flat=True)) == [r.pk for r in rows]  # linked back
    only = eval_sets.create_eval_set(project, EvalSet.TRAJECTORIES, filters={"tag": "bfcl:irrelevance"})
    assert only.item_count == 1 and only.case_type_counts == {"irrelevant_tools": 1}


CANDIDATES = [
    {"id": "flight-17", "tools": [{"name": "search_flights", "parameters": {"type": "object", "properties": {
        "origin": {"type": "string"}, "destination": {"type": "string"}, "date": {"type": "string"}},
        "required": ["origin", "destination", "date"]}}],
     "question": "Find me a flight to Seattle.",
     "candidates": [{"id": "call", "type": "tool_call", "tool_calls": [{"name": "search_flights", "arguments": {
         "origin": "JFK", "destination": "SEA", "date": "2024-05-20"}}]},
                    {"id": "clarify", "type": "clarify", "answer": "Where are you flying from, and on which date?"}],
     "correct": "clarify"},
    {"id": "w", "tools": [{"name": "get_weather", "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}}, "required": ["city"]}}],
     "question": "Weather in Oslo?", "correct": 0,
     "candidates": [{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}, {"answer": "Sunny."}]},
]


def test_an_eval_set_from_uploaded_candidates_takes_the_marked_one_as_gold(project):
    data = "\n".join(json.dumps(r) for r in CANDIDATES).encode()
    es = eval_sets.create_eval_set(project, EvalSet.CANDIDATES, upload=(data, "prefs.jsonl"))
    clarify, weather = set_items(es)
    assert (clarify.reference["decision"], clarify.case_types) == ("ask", ["clarification"])
    assert set(clarify.reference["missing_args"]) == {"origin", "date"}
    assert weather.reference["calls"] == [{"name": "get_weather", "arguments": {"city": "Oslo"}}]
    assert es.filters == {"file": "prefs.jsonl"} and es.name == "Candidates · prefs.jsonl"


@pytest.mark.parametrize("make, field, says", [
    (lambda p, s: eval_sets.create_eval_set(p, EvalSet.SNAPSHOT, snapshot=s, split="test"), "split", "has no test split"),
    # (the API takes any text: a path must not reach outside the snapshot folder)
    (lambda p, s: eval_sets.create_eval_set(p, EvalSet.SNAPSHOT, snapshot=s, split="../eval"), "split",
     "choose one of: eval, test, train"),
    (lambda p, s: eval_sets.create_eval_set(p, EvalSet.TRAJECTORIES, filters={"tag": "nope"}), "filters",
     "no trajectory matches"),
    (lambda p, s: eval_sets.create_eval_set(p, EvalSet.CANDIDATES, upload=(b'{"question": "q", "candidates": '
                                                                      b'[{"answer": "a"}]}', "c.jsonl")),
     "file", "record 1 correct: must name the correct candidate"),
    (lambda p, s: eval_sets.create_eval_set(p, EvalSet.CANDIDATES, upload=(b'{"question": ', "c.jsonl")), "file",
     "c.jsonl line 1: not valid JSON"),
])
def test_an_eval_set_that_cannot_be_made_says_which_field_is_wrong(project, snapshot, make, field, says):
    with pytest.raises(eval_sets.EvalSetError) as e:
        make(project, snapshot)
    assert e.value.field == field and says in e.value.message
    assert not EvalSet.objects.exists()


def test_only_a_finished_prompt_snapshot_makes_an_eval_set(project, snapshot):
    snapshot.kind = "sft"
    snapshot.save()
    with pytest.raises(eval_sets.EvalSetError, match="choose a prompt snapshot"):
        eval_sets.create_eval_set(project, EvalSet.SNAPSHOT, snapshot=snapshot)


# --- launching -----------------------------------------------------------------------------------

@pytest.fixture
def model_dir(tmp_path, settings):
    settings.MODEL_ROOTS = [*settings.MODEL_ROOTS, tmp_path]  # the admin lists it as a model root
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text("{}")
    return d


@pytest.mark.parametrize("over, field, says", [
    ({"model_source": EvalRun.FOLDER, "model_path": "/no/such/model"}, "model_path", "Not an allowed path"),
    ({"model_source": EvalRun.ENDPOINT, "endpoint_url": "localhost:8000"}, "endpoint_url", "http:// or https://"),
    ({"model_source": EvalRun.TRAINING_JOB}, "training_job", "Choose a training run"),
    ({"gen": GenerationSettings(max_new_tokens=0)}, "max_new_tokens", "Between 1"),
    ({"eval_set": None}, "eval_set", "Choose an eval set"),
])
def test_a_launch_that_cannot_run_names_the_field(eval_set, model_dir, over, field, says):
    kw = {"project": eval_set.project, "eval_set": eval_set, "model_source": EvalRun.FOLDER,
          "model_path": str(model_dir), "gen": GenerationSettings(), "enqueue": False, **over}
    with pytest.raises(jobs.LaunchError) as e:
        jobs.launch_eval(**kw)
    assert says in e.value.errors[field]
    assert not EvalRun.objects.exists()


def test_a_training_run_that_has_not_finished_cannot_be_evaluated(eval_set, tmp_path):
    from tests.training.jobs_harness import bare_snapshot_dir, make_snapshot

    snap = make_snapshot(eval_set.project, "sft", bare_snapshot_dir(tmp_path / "sft"))
    job = TrainingJob.objects.create(project=eval_set.project, snapshot=snap, base_model="org/m",
                                     output_dir=str(tmp_path / "run"), status=JobStatus.RUNNING)
    errors = jobs.launch_errors(eval_set.project, eval_set, EvalRun.TRAINING_JOB, training_job=job)
    assert "has not succeeded" in errors["training_job"]
    job.status = JobStatus.SUCCEEDED
    job.save()
    assert "has no final model folder" in jobs.launch_errors(eval_set.project, eval_set, EvalRun.TRAINING_JOB,
                                                             training_job=job)["training_job"]
    (tmp_path / "run" / "final").mkdir(parents=True)
    (tmp_path / "run" / "final" / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "org/m"}))
    assert jobs.launch_errors(eval_set.project, eval_set, EvalRun.TRAINING_JOB, training_job=job) == {}
    run = jobs.launch_eval(project=eval_set.project, eval_set=eval_set, model_source=EvalRun.TRAINING_JOB,
                           training_job=job, merge_adapter=True, gen=GenerationSettings(), enqueue=False)
    spec = jobs.model_spec_for(run)  # a LoRA output loads on its base model, with peft
    assert (spec.path, spec.adapter, spec.merge) == ("org/m", str(tmp_path / "run" / "final"), True)


def test_launching_enqueues_the_run_once_after_commit(eval_set, model_dir, monkeypatch,
                                                      django_capture_on_commit_callbacks):
    sent = []
    monkeypatch.setattr("evaluation.tasks.eval_run.delay", lambda pk: sent.append(pk))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        run = jobs.launch_eval(project=eval_set.project, eval_set=eval_set, model_source=EvalRun.FOLDER,
                               model_path=str(model_dir), gen=GenerationSettings(), limit=2)
        assert sent == []
    assert len(callbacks) == 1 and sent == [run.pk]
    assert run.status == JobStatus.QUEUED and run.total_items == 2 and run.name == f"model · {eval_set.name}"


# --- running ---------------------------------------------------------------------------------------

def test_a_run_against_an_endpoint_returning_the_references_scores_every_metric_full(eval_set):
    with ChatServer(oracle(set_items(eval_set))) as server:
        run = endpoint_run(eval_set, server)
        assert jobs.run_eval_job(run.pk) == JobStatus.SUCCEEDED
        assert jobs.run_eval_job(run.pk) == "not claimed"  # a duplicate delivery does nothing
    run.refresh_from_db()
    assert (run.done_items, run.total_items, run.failed_items, run.progress) == (4, 4, 0, 1.0)
    overall = run.summary["overall"]["metrics"]
    assert all(r["rate"] == 1.0 for r in overall.values() if r["n"]), overall
    assert run.summary["timing"]["items"] == 4 and run.summary["episodes"]["final_answer_ok"]["rate"] == 1.0
    result = run.results.get(position=0)
    assert result.correct and result.set_item.position == 0 and '"messages"' in result.prompt_text


def test_a_run_of_the_tiny_model_renders_its_template_and_scores_its_garbage(eval_set, tiny_model_dir):
    run = jobs.launch_eval(project=eval_set.project, eval_set=eval_set, model_source=EvalRun.FOLDER,
                           model_path=str(tiny_model_dir), limit=2, enqueue=False,
                           gen=GenerationSettings(max_new_tokens=4, response_parser="fallbacks"))
    assert jobs.run_eval_job(run.pk) == JobStatus.SUCCEEDED, run.error
    run.refresh_from_db()
    assert run.done_items == 2 and run.summary["overall"]["metrics"]["correct"]["rate"] == 0.0
    for r in run.results.all():
        assert r.prompt_text.endswith("<|im_start|>assistant\n") and r.correct is False and r.labels
        assert 0 < r.new_tokens <= 4


def test_a_run_whose_model_cannot_load_fails_and_says_why(eval_set, model_dir):
    run = jobs.launch_eval(project=eval_set.project, eval_set=eval_set, model_source=EvalRun.FOLDER,
                           model_path=str(model_dir), gen=GenerationSettings(), enqueue=False)
    assert jobs.run_eval_job(run.pk) == JobStatus.FAILED
    run.refresh_from_db()
    # A config.json and nothing else: transformers says it cannot build the tokenizer; the run says so.
    assert run.error.startswith("ValueError: Couldn't instantiate the backend tokenizer")
    assert run.message == "Failed after 0 of 4 items" and run.finished_at


def test_requests_that_fail_are_counted_not_scored(eval_set):
    with ChatServer(lambda body: (500, "down")) as server:
        run = endpoint_run(eval_set, server, gen=GenerationSettings(retries=0))
        assert jobs.run_eval_job(run.pk) == JobStatus.SUCCEEDED
    run.refresh_from_db()
    assert run.failed_items == 4 and run.summary["n"] == 0
    for r in run.results.all():  # the status, not the body of the refused reply
        assert "HTTP 500 Internal Server Error" in r.error and "down" not in r.error and r.score is None


@pytest.mark.django_db(transaction=True)
def test_cancelling_a_running_evaluation_stops_its_process_group(eval_set):
    with ChatServer(lambda body: {"content": "slow"}, delay=1.0) as server:
        run = endpoint_run(eval_set, server, gen=GenerationSettings(concurrency=1))
        outcome = {}
        worker = threading.Thread(target=lambda: outcome.setdefault("status", jobs.run_eval_job(run.pk, poll=0.2)))
        worker.start()
        wait_for(lambda: EvalRun.objects.filter(pk=run.pk, worker_pid__isnull=False).exists(), 60,
                 "the runner to start")
        wait_for(lambda: server.requests, 60, "the first request")
        run.refresh_from_db()
        pid = run.worker_pid
        assert request_cancel(run) == "cancelling"
        worker.join(60)
    run.refresh_from_db()
    assert outcome["status"] == JobStatus.CANCELLED and run.status == JobStatus.CANCELLED
    assert run.message.startswith("Cancelled after") and not process_alive(pid)


def test_the_periodic_sweep_fails_eval_runs_whose_worker_went_silent(eval_set, model_dir, settings):
    from jobs.tasks import sweep_stale_jobs

    run = jobs.launch_eval(project=eval_set.project, eval_set=eval_set, model_source=EvalRun.FOLDER,
                           model_path=str(model_dir), gen=GenerationSettings(), enqueue=False)
    old = timezone.now() - timezone.timedelta(seconds=300)
    EvalRun.objects.filter(pk=run.pk).update(status=JobStatus.RUNNING, heartbeat_at=old, started_at=old)
    settings.JOB_HEARTBEAT_TIMEOUT = 60
    assert sweep_stale_jobs.run() == [run.pk]
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED and "No heartbeat for 300 s" in run.error


def test_manage_py_evaluate_runs_in_process_and_prints_the_metrics(eval_set, capsys):
    with ChatServer(oracle(set_items(eval_set))) as server:
        server.allow()
        call_command("evaluate", "--model", server.url, "--eval-set", str(eval_set.pk), "--limit", "2",
                     "--endpoint-model", "oracle")
    out = capsys.readouterr().out
    assert "succeeded: 2 items scored" in out and "correct" in out and "100.0%" in out
    run = EvalRun.objects.get()
    assert run.model_source == EvalRun.ENDPOINT and run.limit == 2 and run.status == JobStatus.SUCCEEDED
    with pytest.raises(CommandError, match="No eval set 999"):
        call_command("evaluate", "--model", server.url, "--eval-set", "999")
    with pytest.raises(CommandError, match="endpoint_url"):
        call_command("evaluate", "--model", "http://", "--eval-set", str(eval_set.pk))


# --- closing the loop ------------------------------------------------------------------------------

WRONG_CITY = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


@pytest.fixture
def failed_run(eval_set, model_dir):
    run = jobs.launch_eval(project=eval_set.project, eval_set=eval_set, model_source=EvalRun.FOLDER,
                           model_path=str(model_dir), gen=GenerationSettings(), enqueue=False)
    parallel = next(i for i, it in enumerate(set_items(eval_set)) if it.reference["decision"] == "call")
    fill_run(run, {parallel: WRONG_CITY})
    return run, run.results.get(position=parallel)


def test_a_failed_item_sent_to_annotation_becomes_a_labelled_draft_trajectory(failed_run, lead):
    run, result = failed_run
    assert result.correct is False and "arg_value_error" in result.labels
    outcome = jobs.send_to_annotation(result, user=lead)
    traj = outcome.obj
    assert outcome.created and traj.status == "draft" and traj.source == "evaluation"
    doc = traj.to_canonical()
    assert doc.turns[-1].user == "Compare the weather in Oslo and Rome."
    [step] = doc.turns[-1].steps
    assert (step.kind, step.name, step.arguments) == ("tool_call", "get_weather", {"city": "Paris"})
    assert "arg_value_error" in step.labels and f"evaluation run #{run.pk}" in step.note
    assert doc.meta.tags == ["evaluation", f"eval-run-{run.pk}"]
    assert jobs.send_to_annotation(result, user=lead).created is False  # once per item
    result.refresh_from_db()
    assert result.sent_trajectory_id == traj.pk


def test_a_failed_item_becomes_a_pair_with_the_reference_chosen_and_the_output_rejected(failed_run, lead):
    run, result = failed_run
    outcome = jobs.make_pair(result, user=lead)
    pair = outcome.obj
    assert outcome.created and pair.source == "evaluation" and pair.status == "draft"
    assert [(s["name"], s["arguments"]) for s in pair.chosen] == [("get_weather", {"city": "Oslo"}),
                                                                  ("get_weather", {"city": "Rome"})]
    assert [(s["name"], s["arguments"]) for s in pair.rejected] == [("get_weather", {"city": "Paris"})]
    assert pair.context["turns"][-1]["user"] == "Compare the weather in Oslo and Rome."
    assert jobs.make_pair(result, user=lead).obj.pk == pair.pk


def test_a_correct_item_makes_no_pair_because_both_sides_are_the_same(failed_run, lead):
    run, _ = failed_run
    correct = run.results.filter(correct=True).first()
    with pytest.raises(PairError, match="identical"):
        jobs.make_pair(correct, user=lead)
