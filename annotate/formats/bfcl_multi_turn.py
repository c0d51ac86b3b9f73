"""BFCL multi-turn question files (``BFCL_v4_multi_turn_*.json``) -> trajectories (pure; no Django).

A record is ``{"id", "question": [[{"role", "content"}], ...], "initial_config", "path",
"involved_classes"}`` (+ ``"missed_function": {"3": ["sort"]}`` in the miss-func variant, whose
question then holds an *empty* turn, ``[]``, where the held-out functions become available). Every
entry of ``question`` becomes a turn, an empty one included (its user text empty and its
``extra`` naming the ``missed_function`` made available there), so that turn *i* of the trajectory
is turn *i* of the gold. The possible-answer file's ``ground_truth`` (a list per turn of Python call
strings, e.g. ``"cd(folder='document')"``; an empty list where the model should call nothing, as
in the miss-param turns that lack an argument) is kept as ``meta.reference`` (the import checks
it has one entry per turn). ``initial_config``, ``path``, ``involved_classes``, ``missed_function``
and any other key go to ``meta.extra`` (a message's keys besides role and content go to its
turn's ``extra["message_extra"]``, an answer's keys besides id and ground_truth to the reference).

The records carry no function docs: BFCL keeps them per class in ``multi_turn_func_doc/*.json``.
Pass them as the import's tools file, made with::

    python -m annotate.formats.bfcl_multi_turn path/to/multi_turn_func_doc > bfcl_tools.json

which tags each doc with its class (``"bfcl_class"``); a record then gets the tools of its
``involved_classes`` only (untagged tools are given to every record). A record that has a
``function`` list of its own uses it.

>>> t = to_trajectory({"id": "multi_turn_miss_func_0", "question": [[{"role": "user", "content": "Sort it"}], []],
...     "initial_config": {}, "path": [], "involved_classes": ["GorillaFileSystem"], "missed_function": {"1": ["sort"]}},
...     answer={"id": "multi_turn_miss_func_0", "ground_truth": [[], ["sort(file_name='a.txt')"]]})
>>> [(turn.user, turn.extra) for turn in t.turns]
[('Sort it', {}), ('', {'missed_function': ['sort']})]
>>> t.meta.reference, t.meta.case_types
({'ground_truth': [[], ["sort(file_name='a.txt')"]]}, ['multi_turn', 'tool_required', 'tool_unavailable'])
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from annotate.formats.common import (
    TrajectoryBuilder, make_meta, meta_field, require_dict, require_list, text_of, tools_field, type_name,
)
from annotate.findings import bfcl_types_to_json_schema
from annotate.formats.bfcl import require_question
from annotate.formats import Format, register
from annotate.trajectory import SchemaError, Trajectory, check_nesting

KNOWN_KEYS = ("id", "question", "function", "meta")
CLASS_KEY = "bfcl_class"
# BFCL's own map (bfcl_eval/constants: MULTI_TURN_FUNC_DOC_FILE_MAPPING), file -> class.
FUNC_DOC_CLASSES = {
    "gorilla_file_system.json": "GorillaFileSystem", "math_api.json": "MathAPI", "message_api.json": "MessageAPI",
    "posting_api.json": "TwitterAPI", "ticket_api.json": "TicketAPI", "trading_bot.json": "TradingBot",
    "travel_booking.json": "TravelAPI", "vehicle_control.json": "VehicleControlAPI",
    "web_search.json": "WebSearchAPI", "memory_kv.json": "MemoryAPI_kv", "memory_vector.json": "MemoryAPI_vector",
    "memory_rec_sum.json": "MemoryAPI_rec_sum",
}
_INDEX = re.compile(r"_\d+(?:-\d+)*$")


def detect(record: dict) -> bool:
    return "question" in record and ("involved_classes" in record or "initial_config" in record)


def case_types_of(category: str) -> list[str]:
    found = {"multi_turn", "tool_required"}
    if "miss_func" in category:
        found.add("tool_unavailable")
    if "miss_param" in category:
        found.add("clarification")
    return sorted(found)


def to_trajectory(record: dict, *, answer: dict | None = None, source: str = "",
                  tools: list[dict] | None = None) -> Trajectory:
    record, rid = require_question(record)
    missed = record.get("missed_function") or {}
    if type(missed) is not dict:
        raise SchemaError(f"must be an object of turn -> function names, got {type_name(missed)}", "missed_function")
    b = TrajectoryBuilder()
    system: list[str] = []
    turns = require_list(record.get("question"), "question")
    for i, turn in enumerate(turns):
        w = f"question[{i}]"
        users = []
        extra_of: dict[str, Any] = {}
        for j, m in enumerate(require_list(turn, w)):
            mw = f"{w}[{j}]"
            if type(m) is not dict:
                raise SchemaError(f"a message must be an object, got {type_name(m)}", mw)
            role = m.get("role")
            leftover = {k: v for k, v in m.items() if k not in ("role", "content")}
            if leftover:
                extra_of.setdefault("message_extra", {})[str(j)] = leftover
            if role == "user":
                users.append(text_of(m.get("content"), f"{mw}.content"))
            elif role == "system" and i == 0 and not users:
                system.append(text_of(m.get("content"), f"{mw}.content"))
            else:
                raise SchemaError(f"unexpected role {role!r} in a BFCL multi-turn question", f"{mw}.role")
        extra = extra_of
        if str(i) in missed:
            extra["missed_function"] = missed[str(i)]
        if len(users) > 1:
            extra["user_messages"] = users
        b.user("\n\n".join(users), extra or None)
    traj = b.finish("\n\n".join(system), _tools(record, tools))
    reference = None
    if answer is not None:
        gt = require_dict(answer, "answer").get("ground_truth")
        if type(gt) is not list or not all(type(t) is list for t in gt):
            raise SchemaError(f"the possible answer for {rid!r} needs a ground_truth list of lists, got "
                              f"{type_name(gt)}", "answer.ground_truth")
        if len(gt) != len(turns):
            raise SchemaError(f"the possible answer for {rid!r} has {len(gt)} turns of gold calls, the question "
                              f"{len(turns)} turns", "answer.ground_truth")
        reference = {"ground_truth": gt, **{k: v for k, v in answer.items() if k not in ("id", "ground_truth")}}
    extra = {k: v for k, v in record.items() if k not in KNOWN_KEYS}
    category = _INDEX.sub("", rid)
    given = meta_field(record.get("meta"), "meta")
    traj.meta = make_meta(given, "meta", source=source, external_id=rid, case_types=case_types_of(category),
                          tags=[f"bfcl:{category}"], reference=reference, extra=extra)
    return traj


def _tools(record: dict, default: list[dict] | None) -> list[dict]:
    functions = record.get("function")
    if functions is not None:
        if isinstance(functions, dict):
            functions = [functions]
        functions = require_list(functions, "function")
        return tools_field([_schema(f, f"function[{i}]") for i, f in enumerate(functions)], "function")
    if not default:
        return []
    classes = record.get("involved_classes") or []
    chosen = []
    for t in default:
        cls = t.get(CLASS_KEY)
        if cls is None or cls in classes:
            chosen.append({k: v for k, v in t.items() if k != CLASS_KEY})
    return tools_field([_schema(f, f"tools[{i}]") for i, f in enumerate(chosen)], "tools")


def _schema(f: Any, where: str) -> Any:
    if type(f) is dict and isinstance(f.get("parameters"), (dict, list)):
        check_nesting(f["parameters"], f"{where}.parameters")
        return {**f, "parameters": bfcl_types_to_json_schema(f["parameters"])}
    return f


def func_doc_tools(folder: str | Path) -> list[dict]:
    """Every function doc of BFCL's ``multi_turn_func_doc`` folder (JSON Lines per class), each
    tagged with its class under ``"bfcl_class"`` (BFCL's file -> class map; the file name otherwise)."""
    out = []
    for path in sorted(Path(folder).glob("*.json")):
        cls = FUNC_DOC_CLASSES.get(path.name, path.stem)
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                out.append({**json.loads(line), CLASS_KEY: cls})
    return out


register(Format(
    "bfcl_multi_turn", title="BFCL multi-turn question file", takes_answers=True,
    detect=detect, read=to_trajectory,
    rule="'question' with 'involved_classes' or 'initial_config' (func docs as the tools file)",
    example={"id": "multi_turn_miss_func_3",
             "question": [[{"role": "user", "content": "Find the files with 'test' in their name."}], []],
             "initial_config": {"GorillaFileSystem": {"root": {"alex": {"type": "directory", "contents": {}}}}},
             "path": ["GorillaFileSystem.find"], "involved_classes": ["GorillaFileSystem"],
             "missed_function": {"1": ["find"]}}))


if __name__ == "__main__":  # python -m annotate.formats.bfcl_multi_turn FUNC_DOC_DIR > tools.json
    if len(sys.argv) != 2:
        sys.exit("usage: python -m annotate.formats.bfcl_multi_turn path/to/multi_turn_func_doc > tools.json")
    json.dump(func_doc_tools(sys.argv[1]), sys.stdout, ensure_ascii=False)
