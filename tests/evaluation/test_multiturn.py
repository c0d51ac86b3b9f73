"""Multi-turn evaluation scored as BFCL scores it, on BFCL's own multi-turn items from the wheel:
an oracle that plays the ground truth passes every turn; a model that skips one call fails that
turn; BFCL's own checker agrees on both."""

from __future__ import annotations

import copy

import pytest

from evaluation import bfcl_package
from evaluation.generate import Generation, parse_generation
from evaluation.multiturn import MODE, MultiTurnItem, labels_of, multi_turn_table, play_items, transcript
from tests.evaluation.multiturn_harness import READ_ONLY, ScriptedModel, bfcl_items, call_text, calls_of

pytestmark = pytest.mark.skipif(not bfcl_package.available(), reason="bfcl-eval is not unpacked (make setup)")

CATEGORIES = [("multi_turn_base", 8), ("multi_turn_miss_param", 3), ("multi_turn_miss_func", 3),
              ("multi_turn_long_context", 2)]


def parse(g, item):
    return parse_generation(g, item.tools)


def play(items, script, max_steps=4):
    """Play items category by category (BFCL's categories share first questions, which the scripted
    model tells items apart by)."""
    lines = {}
    for category in dict.fromkeys(it.id.rsplit("_", 1)[0] for it in items):
        some = [it for it in items if it.id.rsplit("_", 1)[0] == category]
        lines.update(zip([it.id for it in some], play_items(some, ScriptedModel(some, script), parse,
                                                             max_steps=max_steps)))
    return [lines[it.id] for it in items]


@pytest.fixture(scope="module")
def items() -> list[MultiTurnItem]:
    return [it for category, n in CATEGORIES for it in bfcl_items(category, n)]


def bfcl_verdict(item: MultiTurnItem, script_calls: list[list[tuple[str, dict]]], model_name: str) -> dict:
    """BFCL's own multi-turn checker on the same calls (one step per turn, as the script plays them)."""
    bfcl_package.importable()
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import multi_turn_checker

    decoded = [[[call_text(n, a) for n, a in turn]] if turn else [] for turn in script_calls]
    entry = {"id": item.id, "initial_config": copy.deepcopy(item.row["initial_config"]),
             "involved_classes": item.environment["classes"]}
    return multi_turn_checker(decoded, item.ground_truth, entry, item.id.rsplit("_", 1)[0], model_name)


def test_an_oracle_playing_the_ground_truth_passes_every_turn_of_every_item(items):
    script = {it.id: calls_of(it) for it in items}
    lines = play(items, script)
    assert [line["item_id"] for line in lines] == [it.id for it in items]
    for it, line in zip(items, lines):
        ep = line["episode"]
        assert line["error"] == "" and ep["mode"] == MODE, (it.id, line["error"])
        assert [t["check"]["valid"] for t in ep["turns"]] == [True] * len(it.turns), (it.id, ep["turns"])
        assert line["correct"] is True and ep["first_failing_turn"] is None and line["labels"] == []
        assert bfcl_verdict(it, script[it.id], "oracle_studio") == {"valid": True}
    table = multi_turn_table([line["episode"] for line in lines])
    assert table["passed"] == table["n"] == len(items) and all(t["rate"] == 1.0 for t in table["turns"])


def _skippable(item: MultiTurnItem) -> tuple[int, int] | None:
    """The first read-only gold call (turn, position) that appears once in its turn."""
    for t, turn in enumerate(calls_of(item)):
        for k, (name, args) in enumerate(turn):
            if name in READ_ONLY and turn.count((name, args)) == 1:
                return t, k
    return None


def test_a_model_that_skips_one_call_fails_exactly_that_turn_as_bfcls_checker_does(items):
    chosen = [(it, spot) for it in items if "GorillaFileSystem" in it.environment["classes"]
              for spot in [_skippable(it)] if spot is not None]
    assert len(chosen) >= 5
    script = {}
    for it, (t, k) in chosen:
        calls = calls_of(it)
        del calls[t][k]
        script[it.id] = calls
    lines = play([it for it, _ in chosen], script)
    for (it, (t, k)), line in zip(chosen, lines):
        ep = line["episode"]
        verdicts = [turn["check"]["valid"] for turn in ep["turns"]]
        assert verdicts == [i != t for i in range(len(it.turns))], (it.id, t, ep["turns"][t]["check"])
        assert ep["first_failing_turn"] == t and line["correct"] is False
        check = ep["turns"][t]["check"]
        assert check["error_type"] in ("multi_turn:execution_response_mismatch", "multi_turn:empty_turn_model_response")
        theirs = bfcl_verdict(it, script[it.id], f"skip_studio_{t}")
        assert theirs["valid"] is False and theirs["error_type"] == check["error_type"]
        assert f"turn {t}" in theirs["error_message"]


def test_a_model_that_changes_the_state_wrongly_fails_on_the_state_check(items):
    it = next(i for i in items if i.id == "multi_turn_base_0")
    calls = calls_of(it)
    calls[0] = [("cd", {"folder": "document"}), ("mkdir", {"dir_name": "tmp"})]  # the wrong folder, nothing moved
    [line] = play([it], {it.id: calls})
    check = line["episode"]["turns"][0]["check"]
    assert check["error_type"] == "multi_turn:instance_state_mismatch" and "GorillaFileSystem" in check["message"]
    assert labels_of(line["episode"]) == ["unintended_state_change"]
    assert bfcl_verdict(it, calls, "state_studio")["error_type"] == "multi_turn:instance_state_mismatch"


def test_a_model_that_calls_nothing_fails_the_turn_and_one_that_never_stops_hits_the_step_limit(items):
    it = next(i for i in items if i.id == "multi_turn_base_0")
    silent = [[] for _ in it.turns]
    [line] = play([it], {it.id: silent})
    assert line["episode"]["turns"][0]["check"]["error_type"] == "multi_turn:empty_turn_model_response"

    class Looping:  # calls pwd forever
        def generate(self, conversations, batch_size=None):
            message = {"role": "assistant", "content": "",
                       "tool_calls": [{"type": "function", "function": {"name": "pwd", "arguments": "{}"}}]}
            return [Generation(text="pwd", message=message) for _ in conversations]
    [line] = play_items([it], Looping(), parse, max_steps=3)
    first = line["episode"]["turns"][0]
    assert first["ended"] == "step_limit" and len(first["steps"]) == 3
    assert first["check"]["error_type"] in ("multi_turn:force_terminated", "multi_turn:instance_state_mismatch")


def test_held_out_functions_are_hidden_until_their_turn(items):
    it = next(i for i in items if i.holdout)
    turn, names = next(iter(it.holdout.items()))
    shown_before = {t["function"]["name"] for t in it.tools_at(int(turn) - 1)}
    shown_at = {t["function"]["name"] for t in it.tools_at(int(turn))}
    assert set(names) - shown_before == set(names) and set(names) <= shown_at
    [line] = play([it], {it.id: calls_of(it)})
    assert line["episode"]["turns"][int(turn)]["user"].startswith("I have updated some more functions")


def test_an_environment_that_fails_ends_the_episode_with_a_label_not_the_run(items):
    broken = MultiTurnItem(id="broken", turns=[[{"role": "user", "content": "hang please"}]], tools=[],
                           environment={"kind": "python", "class": "tests.evaluation.env_classes.Misbehaving"},
                           ground_truth=[["hang()"]])
    fine = items[0]
    script = {"broken": [[("hang", {})]], fine.id: calls_of(fine)}
    from evaluation.environments.sandbox import Limits
    lines = play_items([broken, fine], ScriptedModel([broken, fine], script), parse, max_steps=4,
                       limits=Limits(seconds=1), allowed=["tests.evaluation.env_classes.Misbehaving"])
    assert lines[0]["error"].startswith("timeout: the tool 'hang' did not return within 1 s")
    assert lines[0]["correct"] is None and lines[0]["labels"] == ["tool_execution_error"]
    assert lines[1]["correct"] is True


def test_the_transcript_reads_turn_by_turn(items):
    it = items[0]
    [line] = play([it], {it.id: calls_of(it)})
    turns = transcript(line["episode"])
    assert turns[0]["user"] == it.turns[0][0]["content"]
    assert turns[0]["steps"][0]["calls"][0]["arguments_text"] == '{"folder": "document"}'
    assert turns[0]["gold_text"] == it.ground_truth[0] and turns[-1]["steps"][-1]["answer"] == "Done."


def test_the_module_examples_hold():
    import doctest

    from evaluation import multiturn

    assert doctest.testmod(multiturn).failed == 0


def test_a_registered_class_plays_with_the_tools_read_from_its_methods():
    item = MultiTurnItem(id="counter", turns=[[{"role": "user", "content": "Add two."}], [{"role": "user", "content": "And one."}]],
                         tools=[], environment={"kind": "python", "class": "tests.evaluation.env_classes.Counter"},
                         ground_truth=[[{"name": "add", "arguments": {"n": 2}}], ["add(1)"]], row={"start": 0})
    seen = []

    class Model(ScriptedModel):
        def generate(self, conversations, batch_size=None):
            seen.extend(sorted(t["function"]["name"] for t in conversations[0][1]))
            return super().generate(conversations)
    model = Model([item], {"counter": [[("add", {"n": 2})], [("add", {"n": 1})]]})
    [line] = play_items([item], model, parse, max_steps=4, allowed=["tests.evaluation.env_classes.Counter"])
    assert seen[:2] == ["add", "fail"] and line["correct"] is True
    assert [t["steps"][0]["calls"][0]["result"] for t in line["episode"]["turns"]] == ["2", "3"]
