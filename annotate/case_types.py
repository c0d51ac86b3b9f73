"""Case types read off a trajectory, where the data itself says so (pure; no Django).

Only what the steps prove is inferred; the types that need judgement (clarification needed, tool
unavailable) are left to annotators, and "irrelevant tools only" to sources that state it (BFCL's
irrelevance category).

>>> from annotate.trajectory import Trajectory
>>> t = Trajectory.from_dict({"turns": [{"user": "hi", "steps": [{"kind": "answer", "text": "hello"}]}]})
>>> infer_case_types(t)
['no_tool']
"""

from __future__ import annotations

import re

from annotate.trajectory import Trajectory

# A tool result that starts like this reports a failure (tau-bench writes "Error: ...").
_FAILURE = re.compile(r"\s*(?:(?:error|exception)\b|traceback \(most recent call last\))", re.IGNORECASE)
_JSON_ERROR = re.compile(r'\s*\{\s*"(?:error|exception)"\s*:(?!\s*(?:null\b|false\b|""|\{\s*\}|\[\s*\]))')


_MAY_FAIL = frozenset("eEtT{ \t\r\n")


def infer_case_types(traj: Trajectory) -> list[str]:
    """The case types the steps prove, sorted by name (the order the database keeps them in).

    - no tool call anywhere: ``no_tool``; at least one: ``tool_required``
    - a tool result marked failed (``ok`` False): ``tool_failure``
    - a user turn after a turn that holds tool results: ``multi_turn``
    """
    calls = failed = multi = False
    results_before = False
    for turn in traj.turns:
        if results_before:
            multi = True
        for step in turn.steps:
            kind = step.kind
            if kind == "tool_call":
                calls = True
            elif kind == "tool_result":
                results_before = True
                if not step.ok:
                    failed = True
    found = ["tool_required" if calls else "no_tool"]
    if failed:
        found.append("tool_failure")
    if multi:
        found.append("multi_turn")
    return sorted(found)


def looks_like_failure(text: str) -> bool:
    """Whether a tool result's text reports a failure, for formats with no explicit flag.

    >>> looks_like_failure("Error: flight HAT030 not available on date 2024-05-20")
    True
    >>> looks_like_failure('{"error": "timeout"}'), looks_like_failure('{"error": null, "temp": 20}')
    (True, False)
    >>> looks_like_failure("No errors found in the document")
    False
    """
    if not text or text[0] not in _MAY_FAIL:  # most results: skip the regular expressions
        return False
    if text.startswith('{"') and not text.startswith(('{"error"', '{"exception"')):
        # A JSON object whose first key is another (most JSON results): neither expression can
        # match (-0.3 us a result, measured).
        return False
    return bool(_FAILURE.match(text) or _JSON_ERROR.match(text))
