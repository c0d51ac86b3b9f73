"""What an import would write, shown before it writes (pure; no Django).

:func:`summarize` reads an :class:`annotate.ingest.reader.ImportResult` (a parsed file) into the preview
that ``import_trajectories --dry-run``, the upload page's preview step and the API's ``dry_run``
show: the detected format, the counts, what was mapped to the canonical trajectory, which source
keys were kept in ``extra`` (by key path, with how many records carry each) and the first record as
canonical steps.

>>> from annotate.ingest.reader import parse_file
>>> r = parse_file(b'{"id": "a", "lang": "en", "turns": [{"user": "hi", "assistant_answer": {"text": "hello", "mood": "calm"}}]}', "a.jsonl")
>>> s = summarize(r)
>>> s["format"], s["counts"]["records"], s["counts"]["steps"], s["extra"]
('raw', 1, {'think': 0, 'tool_call': 0, 'tool_result': 0, 'answer': 1}, [{'path': 'record.lang', 'records': 1}, {'path': 'step.mood', 'records': 1}])
>>> print(render_text(s).splitlines()[0])
a.jsonl: raw, 1 record(s) read, 1 importable, 0 problem(s)
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from annotate.trajectory import STEP_KINDS, Trajectory

PREVIEW_CHARS = 160  # text shown per step of the first record
MAX_ERRORS = 20


def summarize(result, pairs: int = 0) -> dict:
    """The preview of a parsed file (``result``: an ImportResult with its trajectories).

    ``pairs``: the preference pairs the file would also give (formats that carry rejected
    continuations report them; 0 otherwise).
    """
    trajs = [t for _, t in result.trajectories]
    steps = Counter({k: 0 for k in STEP_KINDS})
    extra_paths: Counter = Counter()
    mapped: Counter = Counter()
    turns = 0
    for t in trajs:
        turns += len(t.turns)
        seen: set[str] = set()
        seen.update(f"record.{k}" for k in t.meta.extra)
        for turn in t.turns:
            seen.update(f"turn.{k}" for k in turn.extra)
            for s in turn.steps:
                steps[s.kind] += 1
                seen.update(f"step.{k}" for k in s.extra)
        extra_paths.update(seen)
        mapped.update(_mapped(t))
    return {
        "file": result.file,
        "format": result.format,
        "ok": result.ok,
        "counts": {"records": result.records, "trajectories": len(trajs), "turns": turns, "steps": dict(steps),
                   "calls": steps["tool_call"], "pairs": pairs, "problems": result.problem_count},
        "mapped": [{"field": f, "records": n} for f, n in sorted(mapped.items())],
        "extra": [{"path": p, "records": n} for p, n in sorted(extra_paths.items())],
        "errors": [e.to_dict() for e in result.errors[:MAX_ERRORS]],
        "first": first_record(trajs[0], result.trajectories[0][0]) if trajs else None,
    }


def _mapped(t: Trajectory) -> set[str]:
    """The canonical fields a trajectory has values in."""
    out = {"turns.user"} if t.turns else set()
    if t.system:
        out.add("system")
    if t.tools:
        out.add("tools")
    m = t.meta
    for name in ("external_id", "case_types", "tags", "reference"):
        if getattr(m, name):
            out.add(f"meta.{name}")
    for _, _, s in t.steps():
        out.add(f"steps.{s.kind}")
    return out


def first_record(t: Trajectory, line: int) -> dict:
    """The first importable record as canonical steps, each text cut to ``PREVIEW_CHARS`` for show."""
    turns = []
    for turn in t.turns:
        turns.append({"user": _cut(turn.user), "extra": sorted(turn.extra),
                      "steps": [_step(s) for s in turn.steps]})
    return {"line": line, "system": _cut(t.system), "tools": [tool["name"] for tool in t.tools],
            "external_id": t.meta.external_id, "case_types": list(t.meta.case_types),
            "extra": sorted(t.meta.extra), "turns": turns}


def _step(s) -> dict:
    d: dict[str, Any] = {"kind": s.kind}
    if s.kind == "tool_call":
        d["name"] = s.name
        d["arguments"] = _cut(json.dumps(s.arguments, ensure_ascii=False))
        d["call_id"] = s.call_id
    else:
        d["text"] = _cut(s.text)
    if s.kind == "tool_result":
        d["call_id"] = s.call_id
        d["ok"] = s.ok
    if s.extra:
        d["extra"] = sorted(s.extra)
    return d


def _cut(text: str) -> str:
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS - 1] + "…"


def render_text(s: dict) -> str:
    """The preview as the command line prints it."""
    c = s["counts"]
    lines = [f"{s['file']}: {s['format'] or 'format not detected'}, {c['records']} record(s) read, "
             f"{c['trajectories']} importable, {c['problems']} problem(s)",
             f"  turns {c['turns']}, steps " + ", ".join(f"{k} {n}" for k, n in c["steps"].items())
             + f", calls {c['calls']}, pairs {c['pairs']}",
             "  mapped: " + (", ".join(f"{m['field']} ({m['records']})" for m in s["mapped"]) or "nothing"),
             "  kept in extra: " + (", ".join(f"{e['path']} ({e['records']})" for e in s["extra"]) or "nothing")]
    first = s["first"]
    if first:
        lines.append(f"  first record (line {first['line']}):")
        if first["system"]:
            lines.append(f"    system: {first['system']}")
        for i, turn in enumerate(first["turns"]):
            lines.append(f"    turn {i + 1} user: {turn['user']}")
            for st in turn["steps"]:
                body = (f"{st['name']}({st['arguments']})" if st["kind"] == "tool_call" else st["text"])
                lines.append(f"      {st['kind']}: {body}" + (f"  [extra: {', '.join(st['extra'])}]"
                                                               if st.get("extra") else ""))
    return "\n".join(lines)
