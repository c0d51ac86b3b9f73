"""Every record of the real third-party files in ../shared/fixtures imports, with the right counts,
and round-trips to messages with tool names, arguments and results intact.

Expected counts are read from the files themselves here, independently of the converters.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from annotate.formats import dump_jsonl, export_records
from annotate.ingest.reader import parse_file
from tests.conftest import shared_path


def load_records(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def openai_calls(messages: list[dict]) -> tuple[list, list]:
    """(name, arguments) of every call and the text of every tool reply, straight from OpenAI messages."""
    calls, replies = [], []
    for m in messages:
        for c in m.get("tool_calls") or ([{"function": m["function_call"]}] if m.get("function_call") else []):
            args = c["function"]["arguments"]
            calls.append((c["function"]["name"], json.loads(args) if isinstance(args, str) else args))
        if m["role"] in ("tool", "function"):
            replies.append(m["content"])
    return calls, replies


def tagged_calls(text: str) -> list:
    """(name, arguments) of every JSON call inside <tool_call> blocks (one call per line, or pretty-printed)."""
    calls = []
    for block in re.findall(r"<tool_call>(.*?)(?:</tool_call>|$)", text, re.S):
        block = block.strip()
        try:
            items = [json.loads(block)]
        except json.JSONDecodeError:
            items = [json.loads(line) for line in block.splitlines() if line.strip()]
        calls += [(c["name"], c.get("arguments", c.get("parameters"))) for c in items]
    return calls


def toolrl_calls(row: dict) -> list:
    # The reasoning may quote the tags; only what follows it (and the history's blocks) are calls.
    history = re.sub(r"<think>.*?</think>", "", row["input"], flags=re.S)
    return tagged_calls(history) + tagged_calls(row["output"].split("</think>", 1)[1])


def source_calls(fmt: str, rec: dict) -> tuple[list, list | None]:
    """What the source record says the calls (and replies, where it has them) are."""
    if fmt == "tau_bench":
        return openai_calls(rec["traj"])
    if fmt == "messages":
        return openai_calls(rec.get("messages") or rec["conversations"])
    if fmt == "toolrl" and "example" in rec:
        return tagged_calls(rec["example"]), None
    if fmt == "toolrl":
        return toolrl_calls(rec), None
    return [], []  # BFCL questions hold no calls


def exported_calls(rec: dict) -> tuple[list, list]:
    return openai_calls(rec["messages"])


# (case, file, answers file, tools file, format)
FILES = [
    ("BFCL simple with answers", "bfcl/BFCL_v4_simple_python.json", "bfcl/possible_answer/BFCL_v4_simple_python.json",
     None, "bfcl"),
    ("BFCL multiple with answers", "bfcl/BFCL_v4_multiple.json", "bfcl/possible_answer/BFCL_v4_multiple.json", None, "bfcl"),
    ("BFCL irrelevance", "bfcl/BFCL_v4_irrelevance.json", None, None, "bfcl"),
    ("tau-bench airline", "tau_bench/gpt-4o-airline_trial0.json", None, "tau_bench/airline_tools.json", "tau_bench"),
    ("ToolRL", "toolrl/rlla_sft_first200.json", None, None, "toolrl"),
    ("Hermes few-shot examples", "hermes_fc/few_shot.json", None, None, "toolrl"),
    ("ADP Toucan raw (OpenAI messages, legacy function_call)", "adp/toucan_1_5m/sample_raw.json", None, None, "messages"),
    ("ADP Orca-AgentInstruct raw (messages, no tools)", "adp/orca_agentinstruct/sample_raw.json", None, None, "messages"),
]


@pytest.fixture(scope="module")
def imported():
    """Each fixture file parsed once: {case: (source records, ImportResult, messages export)}."""
    out = {}
    for case, file, answers, tools, _ in FILES:
        path = shared_path("fixtures", file)
        result = parse_file(path.read_bytes(), path.name,
                            answers=shared_path("fixtures", answers).read_bytes() if answers else None,
                            tools=shared_path("fixtures", tools).read_bytes() if tools else None)
        exported = list(export_records([t for _, t in result.trajectories], "messages"))
        out[case] = (load_records(path), result, exported)
    return out


@pytest.mark.parametrize("case, file, answers, tools, fmt", FILES, ids=[f[0] for f in FILES])
def test_every_record_imports(imported, case, file, answers, tools, fmt):
    records, result, _ = imported[case]
    assert result.errors == []
    assert (result.format, result.records, len(result.trajectories)) == (fmt, len(records), len(records))
    assert all(t.meta.source == f"{fmt}:{Path(file).name}" for _, t in result.trajectories)


@pytest.mark.parametrize("case, file, answers, tools, fmt", FILES, ids=[f[0] for f in FILES])
def test_calls_and_results_survive_the_round_trip_to_messages(imported, case, file, answers, tools, fmt):
    records, result, exported = imported[case]
    for rec, (_, traj), out in zip(records, result.trajectories, exported):
        calls, replies = source_calls(fmt, rec)
        got_calls, got_replies = exported_calls(out)
        assert got_calls == calls
        if replies is not None:
            assert got_replies == replies
        assert sum(s.kind == "tool_call" for _, _, s in traj.steps()) == len(calls)
    back = parse_file(dump_jsonl(exported).encode(), "export.jsonl")
    assert [t for _, t in back.trajectories] == [t for _, t in result.trajectories]


@pytest.mark.parametrize("case, file, answers", [f[:3] for f in FILES if f[4] == "bfcl"], ids=[f[0] for f in FILES if f[4] == "bfcl"])
def test_bfcl_keeps_its_tools_and_gold_answers(imported, case, file, answers):
    records, result, exported = imported[case]
    gold = {a["id"]: a["ground_truth"] for a in load_records(shared_path("fixtures", answers))} if answers else {}
    for rec, (_, traj), out in zip(records, result.trajectories, exported):
        assert [t["function"]["name"] for t in out["tools"]] == [f["name"] for f in rec["function"]]
        assert [m["content"] for m in out["messages"] if m["role"] == "user"] == [
            m["content"] for turn in rec["question"] for m in turn if m["role"] == "user"]
        if answers:
            assert traj.meta.reference == {"ground_truth": gold[rec["id"]]}
            assert traj.meta.case_types == ["tool_required"]
        else:
            assert traj.meta.case_types == ["irrelevant_tools"]


def test_tau_bench_keeps_each_reward_and_the_domain_tools(imported):
    records, result, _ = imported["tau-bench airline"]
    tools = json.loads(shared_path("fixtures", "tau_bench/airline_tools.json").read_text())
    assert [t.meta.reference["reward"] for _, t in result.trajectories] == [r["reward"] for r in records]
    assert [t.meta.reference["actions"] for _, t in result.trajectories] == [r["info"]["task"]["actions"] for r in records]
    assert all([x["name"] for x in t.tools] == [x["function"]["name"] for x in tools] for _, t in result.trajectories)
    failed = sum(any(m["role"] == "tool" and m["content"].startswith("Error") for m in r["traj"]) for r in records)
    assert sum("tool_failure" in t.meta.case_types for _, t in result.trajectories) == failed


@pytest.mark.parametrize("file, line, field, words", [
    # ADP's SFT rendering of Toucan writes calls as Python code for an OpenHands tool, not as JSON calls.
    ("adp/toucan_1_5m/sample_sft.json", 2, "conversations[3].value", "is not valid JSON"),
    ("adp/toucan_1_5m/sample_std.json", 2, "content", "Agent Data Protocol"),
    ("adp/orca_agentinstruct/sample_std.json", 2, "content", "Agent Data Protocol"),
], ids=["ADP Toucan SFT text", "ADP Toucan standardized", "ADP Orca standardized"])
def test_adp_renderings_without_json_tool_calls_are_refused_clearly(file, line, field, words):
    path = shared_path("fixtures", file)
    result = parse_file(path.read_bytes(), path.name)
    assert result.trajectories == []
    assert (result.errors[0].line, result.errors[0].field) == (line, field)
    assert words in result.errors[0].message
