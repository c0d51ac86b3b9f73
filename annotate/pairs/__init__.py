"""Preference pairs: a shared context, a chosen and a rejected continuation (pure; no Django).

A pair forks a canonical trajectory at a cut point ``(turn, step)``: the **context** is every
earlier turn plus the cut turn's user message and its steps before ``step``; the **chosen** and
**rejected** continuations are what the assistant does next in that turn (think, tool calls, tool
results, answer). Later turns are not part of a pair: they depended on the original continuation.

>>> from annotate.trajectory import Trajectory
>>> t = Trajectory.from_dict({"tools": [{"name": "get_weather", "parameters": {"type": "object",
...     "properties": {"city": {"type": "string"}}, "required": ["city"]}}],
...     "turns": [{"user": "Weather in Paris?", "steps": [
...         {"kind": "tool_call", "name": "get_weather", "arguments": {"city": "Paris"}, "call_id": "c1"},
...         {"kind": "tool_result", "name": "get_weather", "text": "18C", "call_id": "c1"},
...         {"kind": "answer", "text": "18 degrees."}]}]})
>>> pair = fork(t, 0, 0, category="tool_needed")
>>> pair.rejected = starter_steps("tool_needed", pair.chosen, pair.context)
>>> [s.kind for s in pair.chosen], [s.kind for s in pair.rejected]
(['tool_call', 'tool_result', 'answer'], ['answer'])
>>> pair_errors(pair)
[]

The package, from the pure core out (no Django in the first six; the last five are the app's shell):

- ``core``: categories, the pair, forking, comparing sides, validation, category inference;
- ``starters``: the typical bad variant of a chosen side, per category;
- ``corrections``: pairs implied by an annotator's correction;
- ``candidates``: pairs from one question with candidate answers, the correct one marked;
- ``records``: a file of preference records of any format (candidates, When2Call, ToolBench) into pairs;
- ``audit``: the check of one rendered DPO pair;
- ``models``, ``services``, ``views``, ``api``, ``urls`` / ``api_urls``: the rows, the writes the pages,
  API and CLI share, and the pages and API themselves.

The names below are the pure core's public API, importable from ``annotate.pairs``.
"""

from __future__ import annotations

from annotate.pairs.audit import AuditProblem, audit_rendered_pair
from annotate.pairs.candidates import CANDIDATE_TYPES, candidate_steps, pairs_from_candidates
from annotate.pairs.core import (
    CATEGORIES,
    FORMAT,
    SOURCES,
    STATUSES,
    Category,
    DiffRow,
    Pair,
    PairError,
    check_cut,
    check_pair,
    diff_sides,
    finding_label,
    fork,
    guess_category,
    label_rejected,
    pair_errors,
    same_content,
    side_findings,
    step_signature,
    steps_from_dicts,
    with_continuation,
)
from annotate.pairs.corrections import suggest_from_revisions
from annotate.pairs.records import CandidatesResult, pairs_from_record, parse_candidates
from annotate.pairs.starters import STARTERS, Starter, StarterError, blank_value, placeholder_arguments, starter_steps

__all__ = [
    "CANDIDATE_TYPES", "CATEGORIES", "FORMAT", "SOURCES", "STARTERS", "STATUSES", "AuditProblem", "CandidatesResult",
    "Category", "DiffRow", "Pair", "PairError", "Starter", "StarterError", "audit_rendered_pair", "blank_value",
    "candidate_steps", "check_cut", "check_pair", "diff_sides", "finding_label", "fork", "guess_category",
    "label_rejected", "pair_errors", "pairs_from_candidates", "pairs_from_record", "parse_candidates",
    "placeholder_arguments", "same_content", "side_findings", "starter_steps", "step_signature",
    "steps_from_dicts", "suggest_from_revisions", "with_continuation",
]
