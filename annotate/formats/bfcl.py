"""Berkeley Function Calling Leaderboard question files -> canonical trajectories (pure; no Django).

A BFCL record is ``{"id", "question": [[{"role", "content"}, ...], ...], "function": [...]}``:
``question`` holds one message list per turn; ``function`` the tool docs, whose parameter types
use BFCL's own names (``dict``, ``float``, ``tuple``, ``any``...), mapped here to JSON Schema
(:func:`annotate.findings.bfcl_types_to_json_schema`). The possible-answer file's entry for the
same id (``{"id", "ground_truth": [{fn_name: {arg: [acceptable values...]}}]}``) is kept as the
gold ``meta.reference``; the trajectory itself holds the question only (no assistant steps).

Case types come from the category in the id: ``irrelevance`` (and ``live_irrelevance``) items are
``irrelevant_tools`` (the right behaviour is to call no tool; their reference is an empty
``ground_truth``), every other category is ``tool_required``.

>>> t = to_trajectory({"id": "simple_python_0", "question": [[{"role": "user", "content": "Area?"}]],
...     "function": [{"name": "area", "parameters": {"type": "dict", "properties": {"base": {"type": "float"}}}}]},
...     answer={"id": "simple_python_0", "ground_truth": [{"area": {"base": [10]}}]})
>>> t.tools[0]["parameters"]["type"], t.tools[0]["parameters"]["properties"]["base"]["type"]
('object', 'number')
>>> t.meta.case_types, t.meta.reference, t.meta.tags
(['tool_required'], {'ground_truth': [{'area': {'base': [10]}}]}, ['bfcl:simple_python'])
"""

from __future__ import annotations

import re
from typing import Any

from annotate.formats import Format, register
from annotate.formats.common import (
    leftovers,
    TrajectoryBuilder, make_meta, meta_field, require_dict, text_of, tools_field, type_name,
)
from annotate.findings import bfcl_types_to_json_schema
from annotate.trajectory import SchemaError, Trajectory, check_nesting

_INDEX = re.compile(r"_\d+(?:-\d+)*$")


def category_of(record_id: str) -> str:
    """``simple_python_12`` -> ``simple_python``; ``live_irrelevance_3-0-1`` -> ``live_irrelevance``."""
    return _INDEX.sub("", record_id)


def require_question(record: Any) -> tuple[dict, str]:
    """The record as a dict and its string id (BFCL's single- and multi-turn questions alike)."""
    record = require_dict(record, "record")
    rid = record.get("id")
    if not isinstance(rid, str) or not rid:
        raise SchemaError("a BFCL question needs a string id", "id")
    return record, rid


def to_trajectory(record: dict, *, answer: dict | None = None, source: str = "",
                  tools: list[dict] | None = None) -> Trajectory:
    """Convert one question; ``answer`` is its possible-answer entry, if any."""
    record, rid = require_question(record)
    b = TrajectoryBuilder()
    extra = leftovers(record, ("id", "question", "function", "meta"), "")
    system = _questions(b, record.get("question"), extra)
    functions = record.get("function")
    if isinstance(functions, dict):
        functions = [functions]
    if isinstance(functions, list):
        functions = [_json_schema_types(f, f"function[{i}]") for i, f in enumerate(functions)]
    traj = b.finish(system, tools_field(functions, "function") if functions else tools_field(tools, "tools"))
    category = category_of(rid)
    irrelevant = "irrelevance" in category
    reference: Any = None
    if answer is not None:
        gt = require_dict(answer, "answer").get("ground_truth")
        if not isinstance(gt, list):
            raise SchemaError(f"the possible answer for {rid!r} needs a ground_truth list, got {type_name(gt)}",
                              "answer.ground_truth")
        reference = {"ground_truth": gt}
    elif irrelevant:
        reference = {"ground_truth": []}
    given = meta_field(record.get("meta"), "meta")
    traj.meta = make_meta(given, "meta", source=source, external_id=rid,
                          case_types=["irrelevant_tools" if irrelevant else "tool_required"],
                          tags=[f"bfcl:{category}"], reference=reference, extra=extra)
    return traj


def _json_schema_types(f: Any, where: str) -> Any:
    if type(f) is dict and isinstance(f.get("parameters"), (dict, list)):
        check_nesting(f["parameters"], f"{where}.parameters")  # before the recursive type mapping
        return {**f, "parameters": bfcl_types_to_json_schema(f["parameters"])}
    return f


def _questions(b: TrajectoryBuilder, question: Any, extra: dict) -> str:
    """Add the user turns; returns the system prompt (system messages before the first user).
    A message's unmapped keys go to ``extra`` by its place (``question[0][1]``)."""
    if isinstance(question, str):
        b.user(question)
        return ""
    if not isinstance(question, list):
        raise SchemaError(f"must be a list of turns, got {type_name(question)}", "question")
    if question and all(type(m) is dict for m in question):  # older files: one flat message list
        question = [question]
    system: list[str] = []
    for ti, turn in enumerate(question):
        if not isinstance(turn, list):
            raise SchemaError(f"a turn must be a list of messages, got {type_name(turn)}", f"question[{ti}]")
        for mi, m in enumerate(turn):
            w = f"question[{ti}][{mi}]"
            if type(m) is not dict:
                raise SchemaError(f"a message must be an object, got {type_name(m)}", w)
            role = m.get("role")
            content = text_of(m.get("content"), f"{w}.content")
            left = leftovers(m, ("role", "content"), w)
            if left:
                extra[w] = left
            if role == "user":
                b.user(content)
            elif role == "system" and not b.turns:
                system.append(content)
            elif role == "assistant":
                b.answer(content)
            else:
                raise SchemaError(f"unexpected role {role!r} in a BFCL question", f"{w}.role")
    return "\n\n".join(system)


register(Format(
    "bfcl", title="BFCL question file", takes_answers=True,
    detect=lambda r: "question" in r and "function" in r,
    read=lambda r, *, source="", tools=None, answer=None: to_trajectory(r, answer=answer, source=source, tools=tools),
    rule="'question' and 'function' (its possible answers given as a second file)",
    example={"id": "simple_0", "question": [[{"role": "user", "content": "Area of a circle of radius 3?"}]],
             "function": [{"name": "circle_area", "description": "Area of a circle.",
                           "parameters": {"type": "dict", "properties": {"radius": {"type": "integer"}}}}]}))
