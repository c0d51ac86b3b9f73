"""Multi-turn evaluation runs end to end: BFCL multi-turn trajectories (imported from the wheel's own
data) become an eval set of playable items; a worker runs them through the runner's subprocess,
each episode in its own child; failures go back to annotation or become pairs."""

from __future__ import annotations

import pytest

from annotate.formats.bfcl_multi_turn import to_trajectory as bfcl_multi_turn_trajectory
from annotate.ingest.writer import write_trajectories
from evaluation import bfcl_package, eval_sets, jobs
from evaluation.generate import GenerationSettings
from evaluation.models import EvalRun, EvalSet
from evaluation.multiturn import MODE, MultiTurnItem
from tests.evaluation.multiturn_harness import ScriptedModel, bfcl_records, calls_of
from tests.evaluation.runs_harness import ChatServer
from tests.training.jobs_harness import fast_users
from training.models import JobStatus

pytestmark = pytest.mark.skipif(not bfcl_package.available(), reason="bfcl-eval is not unpacked (make setup)")


@pytest.fixture(autouse=True)
def _setup(settings, tmp_path, monkeypatch):
    fast_users(settings)
    settings.EVAL_RUNS_DIR = tmp_path / "eval-runs"
    monkeypatch.setattr("evaluation.tasks.eval_run.delay", lambda pk: None)  # no broker in these tests


@pytest.fixture
def eval_set(project):
    records = bfcl_records("multi_turn_base", 3)
    write_trajectories(project, [bfcl_multi_turn_trajectory(q, answer=a, source="bfcl") for q, a in records])
    return eval_sets.create_eval_set(project, EvalSet.TRAJECTORIES, filters={"tag": "bfcl:multi_turn_base"})


def items_of(eval_set) -> list[MultiTurnItem]:
    return [MultiTurnItem.from_dict(d) for d in eval_set.items.order_by("position").values_list("document", flat=True)]


def endpoint_run(eval_set, server, **over):
    server.allow()
    kw = {"project": eval_set.project, "eval_set": eval_set, "model_source": EvalRun.ENDPOINT,
          "endpoint_url": server.url, "endpoint_model": "scripted", "gen": GenerationSettings(), "enqueue": False}
    kw.update(over)
    return jobs.launch_eval(**kw)


def scripted_server(items, script):
    model = ScriptedModel(items, script)
    return ChatServer(lambda body: model.generate([(body["messages"], body.get("tools") or [])])[0].message)


def test_bfcl_multi_turn_trajectories_make_an_eval_set_of_playable_items(eval_set):
    items = items_of(eval_set)
    assert [it.id for it in items] == [f"t{t}v1" for t in eval_set.items.values_list("trajectory_id", flat=True)]
    first = items[0]
    assert first.mode == MODE and first.environment == {"kind": "bfcl", "classes": ["TwitterAPI", "GorillaFileSystem"]}
    assert first.ground_truth[0] == ["cd(folder='document')", "mkdir(dir_name='temp')",
                                     "mv(source='final_report.pdf', destination='temp')"]
    assert "GorillaFileSystem" in first.row["initial_config"] and len(first.turns) == 4
    names = {t["function"]["name"] for t in first.tools}
    assert {"cd", "mkdir", "mv", "post_tweet"} <= names  # BFCL's function docs, from the wheel
    assert eval_set.case_type_counts == {"tool_required": 3, "multi_turn": 3}


@pytest.fixture
def played(eval_set):
    """A run against a scripted endpoint: the gold calls, except one grep skipped in turn 2 of the second item."""
    items = items_of(eval_set)
    script = {it.id: calls_of(it) for it in items}
    skipped = items[1]  # multi_turn_base_1: turn 2 is "cd(folder='archive')", "grep(...)"
    script[skipped.id] = [list(turn) for turn in script[skipped.id]]
    assert script[skipped.id][2][1][0] == "grep"
    del script[skipped.id][2][1]
    with scripted_server(items, script) as server:
        run = endpoint_run(eval_set, server)
        assert jobs.run_eval_job(run.pk) == JobStatus.SUCCEEDED, run.error
    run.refresh_from_db()
    return run, skipped


def test_a_run_against_an_oracle_endpoint_passes_every_turn_and_a_skipped_call_fails_its_turn(played, lead):
    run, skipped = played
    assert (run.done_items, run.total_items, run.failed_items) == (3, 3, 0)
    table = run.summary["multi_turn"]
    assert (table["n"], table["passed"]) == (3, 2) and table["first_failing_turn"] == {"none": 2, "2": 1}
    assert table["turns"][2] == {"turn": 2, "passed": 2, "n": 3, "rate": round(2 / 3, 4)}
    failed = run.results.get(correct=False)
    assert failed.item_id == skipped.id and failed.episode["first_failing_turn"] == 2
    assert failed.episode["turns"][2]["check"]["error_type"] == "multi_turn:execution_response_mismatch"
    assert failed.labels == ["goal_partially_completed"]

    sent = jobs.send_to_annotation(failed, user=lead).obj
    traj = sent.to_canonical()
    assert [t.user for t in traj.turns] == [t[0]["content"] for t in skipped.turns]
    turn2 = traj.turns[2].steps
    assert [s.name for s in turn2 if s.kind == "tool_call"] == ["cd"]  # the grep the model skipped is not there
    assert turn2[0].labels == ["goal_partially_completed"] and "Turn 2 failed" in turn2[0].note
    assert traj.meta.extra["involved_classes"] == ["GorillaFileSystem"] and traj.meta.reference["ground_truth"]
    assert jobs.send_to_annotation(failed, user=lead).created is False

    pair = jobs.make_pair(failed, user=lead).obj
    assert pair.source == "evaluation" and "turn 2" in pair.note
    assert len(pair.context["turns"]) == 3 and pair.context["turns"][-1]["steps"] == []
    assert [s["name"] for s in pair.chosen if s["kind"] == "tool_call"] == ["cd", "grep"]
    assert [s["name"] for s in pair.rejected if s["kind"] == "tool_call"] == ["cd"]
    assert jobs.make_pair(failed, user=lead).obj.pk == pair.pk



def test_the_dashboard_shows_per_turn_success_the_first_failing_turn_and_the_transcript(played, lead, client):
    run, skipped = played
    client.force_login(lead)
    page = client.get(run.get_absolute_url()).content.decode()
    assert 'id="multi-turn-turns"' in page and "Items passed (every turn)</td><td>2 of 3" in page
    assert 'data-first-failing="2"' in page
    failed = run.results.get(correct=False)
    item = client.get(failed.get_absolute_url()).content.decode()
    assert "3 of 4 turns passed; first failing turn: 2" in item
    assert 'data-turn="2" data-valid="no"' in item and 'data-turn="3" data-valid="yes"' in item
    assert skipped.turns[2][0]["content"].replace("'", "&#x27;") in item  # the user's words, escaped
    assert "grep(file_name=&#x27;log.txt&#x27;,pattern=&#x27;Error&#x27;)" in item  # the gold call the model skipped
    assert 'id="send-to-annotation"' in item and 'id="make-pair"' in item
