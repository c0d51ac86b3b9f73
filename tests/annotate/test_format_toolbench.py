"""ToolBench answer trees (OpenBMB/ToolBench): the final chain as a trajectory, abandoned branches as pairs.

The sample under tests/fixtures/toolbench is a published answer file (see tests/fixtures/README.md);
its search tree happens to be a single chain, so the branched trees below add abandoned branches to
it, shaped as ToolBench's DFS writes them (``Tree.tree_node.to_json``), and say so.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from annotate import formats
from annotate.formats import toolbench
from annotate.ingest.reader import parse_file
from annotate.pairs import PairError, parse_candidates
from tests.annotate.test_format_when2call import missing_from_export, raw_round_trip

FILE = Path(__file__).resolve().parents[1] / "fixtures" / "toolbench" / "82217_ChatGPT_DFS_woFilter_w2.json"
RECORD = json.loads(FILE.read_text())
CHAIN = RECORD["answer_generation"]["train_messages"][-1]


def trajectory():
    r = parse_file(FILE.read_bytes(), FILE.name)
    assert r.errors == [], [str(e) for e in r.errors]
    [(line, t)] = r.trajectories
    assert (r.format, line) == ("toolbench", 1)
    return t


def test_the_final_chain_of_a_published_answer_file_becomes_the_trajectory():
    t = trajectory()
    steps = t.turns[0].steps
    calls = [m["function_call"] for m in CHAIN if m.get("function_call") and m["function_call"]["name"] != "Finish"]
    results = [m for m in CHAIN if m["role"] == "function"]
    thoughts = [m["content"] for m in CHAIN if m["role"] == "assistant" and m.get("content")]
    assert [s.name for s in steps if s.kind == "tool_call"] == [c["name"] for c in calls]
    assert [s.arguments for s in steps if s.kind == "tool_call"] == [json.loads(c["arguments"]) for c in calls]
    assert [s.text for s in steps if s.kind == "tool_result"] == [m["content"] for m in results]
    assert all(s.ok for s in steps if s.kind == "tool_result")  # every result's "error" is empty
    assert [s.text for s in steps if s.kind == "think"] == thoughts
    finish = json.loads(RECORD["answer_generation"]["final_answer"])
    assert steps[-1].kind == "answer" and steps[-1].text == finish["final_answer"]
    assert t.system == CHAIN[0]["content"] and t.turns[0].user == CHAIN[1]["content"]
    assert [x["name"] for x in t.tools] == [f["name"] for f in RECORD["answer_generation"]["function"]]
    assert len(t.turns) == 1 and "tool_required" in t.meta.case_types


def test_every_value_of_the_answer_file_is_kept():
    t = trajectory()
    assert missing_from_export(RECORD, t) == []
    extra = t.meta.extra
    assert extra["tree"] == RECORD["tree"] and extra["compare_candidates"] == RECORD["compare_candidates"]
    assert (extra["win"], extra["forward_args"]) == (RECORD["win"], RECORD["forward_args"])
    ag = extra["answer_generation"]
    assert (ag["query"], ag["query_count"], ag["total_tokens"]) == (
        RECORD["answer_generation"]["query"], RECORD["answer_generation"]["query_count"],
        RECORD["answer_generation"]["total_tokens"])
    # The earlier train_messages lists are prefixes of the final chain: kept as their lengths.
    assert ag["train_messages"] == [len(m) for m in RECORD["answer_generation"]["train_messages"][:-1]]


def test_the_answer_file_round_trips_through_the_raw_export():
    t = trajectory()
    assert raw_round_trip(t) == t


DIVERSITY = {"role": "user", "content": "This is not the first time you try this task.", "valid": False}


def with_diversity_prompt() -> dict:
    """DFSDT's prompt for a second try inside the final chain (derived: inserted after the first result)."""
    rec = copy.deepcopy(RECORD)
    rec["answer_generation"]["train_messages"][-1].insert(4, DIVERSITY)
    return rec


def test_a_prompt_inside_the_chain_is_kept_where_it_was_said():
    t = toolbench.read(with_diversity_prompt())
    assert t.turns[0].extra["interjections"] == [{"at": 2, "message": DIVERSITY}]
    assert len(t.turns) == 1 and [s.kind for s in t.turns[0].steps][:3] == ["tool_call", "tool_result", "tool_call"]


def test_a_prompt_inside_the_chain_is_in_the_raw_export():
    rec = with_diversity_prompt()
    t = toolbench.read(rec)
    assert missing_from_export(rec, t) == [] and raw_round_trip(t) == t


def test_other_keys_of_the_system_message_are_kept_by_its_place():
    rec = copy.deepcopy(RECORD)
    rec["answer_generation"]["train_messages"][-1][0]["lang"] = "en"
    r = parse_file(json.dumps(rec).encode(), "a.json")
    assert r.errors == []
    t = r.trajectories[0][1]
    last = len(rec["answer_generation"]["train_messages"]) - 1
    assert t.meta.extra[f"answer_generation.train_messages[{last}][0]"] == {"lang": "en"}
    assert missing_from_export(rec, t) == [] and raw_round_trip(t) == t


def test_an_answer_without_a_chain_or_with_broken_arguments_is_refused_naming_the_field():
    rec = copy.deepcopy(RECORD)
    rec["answer_generation"]["valid_data"] = False
    del rec["answer_generation"]["train_messages"]
    [e] = parse_file(json.dumps(rec).encode(), "a.json").errors
    assert e.field == "answer_generation.train_messages" and "valid_data is false" in e.message
    rec = copy.deepcopy(RECORD)
    rec["answer_generation"]["train_messages"][-1][2]["function_call"]["arguments"] = "{"
    [e] = parse_file(json.dumps(rec, indent=2).encode(), "a.json").errors
    assert e.field == "answer_generation.train_messages[4][2].function_call.arguments"


# Abandoned branches -> pairs -------------------------------------------------------------------------

def node(node_type, description, children=(), **kw):
    d = {"is_terminal": False, "pruned": kw.pop("pruned", False), "finished": False, "depth": 0,
         "node_type": node_type, "description": description, "Elo": 1000.0, **kw,
         "child_count": len(children), "expand_num": 0, "children": list(children)}
    return d


GIVE_UP = "{\n  \"return_type\": \"give_up_and_restart\"\n}"


def branched() -> dict:
    """The published file with two abandoned branches added to its tree (derived)."""
    rec = copy.deepcopy(RECORD)
    root = rec["tree"]["tree"]
    # Tried first from the root: a function that does not exist, then giving up.
    made_up = node("Action", "random_quote_for_olato_quotes", [
        node("Action Input", "{}", [
            node("Action", "Finish", [
                node("Action Input", GIVE_UP, observation="{\"response\":\"chose to give up and restart\"}",
                     observation_code=4, pruned=True)])],
             observation="{\"error\": \"No such function name: random_quote_for_olato_quotes\", \"response\": \"\"}",
             observation_code=1)])
    root["children"].insert(0, made_up)
    # After the first result: a thought and a call that fails, pruned.
    after_first = root["children"][1]["children"][0]
    after_first["children"].insert(0, node("Thought", "Let me fetch the success quote with id 7.", [
        node("Action", "success_quote_for_olato_quotes", [
            node("Action Input", "{\"id\": 7}", observation="{\"error\": \"Unexpected parameter: id\", \"response\": \"\"}",
                 observation_code=2, pruned=True)])]))
    return rec


def test_every_abandoned_branch_is_a_rejected_continuation_forked_where_it_left_the_final_chain():
    final = toolbench.read(RECORD).turns[0].steps
    first, second = toolbench.tree_pairs(branched())
    # Forked at the start: the whole final chain is chosen.
    assert first.cut == (0, 0) and first.context.turns[0].user == CHAIN[1]["content"]
    assert [(s.kind, s.text, s.name) for s in first.chosen] == [(s.kind, s.text, s.name) for s in final]
    assert [(s.kind, s.name) for s in first.rejected] == [
        ("tool_call", "random_quote_for_olato_quotes"), ("tool_result", "random_quote_for_olato_quotes"),
        ("tool_call", "Finish"), ("tool_result", "Finish")]
    assert first.rejected[0].labels == ["hallucinated_tool"] and first.rejected[1].ok is False
    assert first.rejected[2].arguments == {"return_type": "give_up_and_restart"}
    # Forked after the first call and its result.
    assert second.cut == (0, 2)
    assert [(s.kind, s.name) for s in second.context.turns[0].steps] == [
        ("tool_call", "love_quote_for_olato_quotes"), ("tool_result", "love_quote_for_olato_quotes")]
    assert [s.text for s in second.chosen if s.kind == "tool_result"] == [
        s.text for s in final if s.kind == "tool_result"][1:]
    assert [s.kind for s in second.rejected] == ["think", "tool_call", "tool_result"]
    assert second.rejected[1].arguments == {"id": 7} and second.rejected[2].ok is False
    assert {p.source for p in (first, second)} == {"imported"}


def test_a_tree_that_is_only_the_final_chain_offers_no_pairs():
    assert toolbench.tree_pairs(RECORD) == []


def test_a_tree_without_a_given_answer_is_refused_for_pairs():
    rec = copy.deepcopy(RECORD)
    del rec["tree"]
    with pytest.raises(PairError) as e:
        toolbench.tree_pairs(rec)
    assert e.value.field == "tree"


def test_pairs_import_reads_a_pretty_printed_answer_file():
    r = parse_candidates(json.dumps(branched(), indent=2).encode(), "82217.json")
    assert r.errors == [] and r.formats == {"toolbench": None} and len(r.pairs) == 2
    assert formats.detect(RECORD) == "toolbench"
