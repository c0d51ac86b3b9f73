"""A compact, readable form of a trajectory's turns and steps, for tables of expected results."""

from __future__ import annotations

from annotate.trajectory import Trajectory


def shape(traj: Trajectory) -> list[tuple]:
    """``[("user", text), ("think", text), ("call", name, arguments, id), ("result", id, text, ok),
    ("answer", text), ...]`` in order, the way a reader scans a conversation."""
    out: list[tuple] = []
    for turn in traj.turns:
        out.append(("user", turn.user))
        for s in turn.steps:
            if s.kind == "think":
                out.append(("think", s.text))
            elif s.kind == "answer":
                out.append(("answer", s.text))
            elif s.kind == "tool_call":
                out.append(("call", s.name, s.arguments, s.call_id))
            else:
                out.append(("result", s.call_id, s.text, s.ok))
    return out
