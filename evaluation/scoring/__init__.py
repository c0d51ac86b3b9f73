"""Score a parsed model output against a reference (pure; no Django).

The package, by concern: ``references`` (what the model should have done), ``decisions`` (call /
answer / ask / decline, and the (gold, predicted) -> outcome table), ``arguments`` (BFCL's argument
matching and schema checks), ``answers`` (grounding and answer correctness), ``score`` (one output ->
:class:`ItemScore`; for BFCL items "correct" is BFCL's AST checker's verdict), ``intervals`` and
``statistics`` (many scores -> the dashboard's tables) and ``when2call`` (When2Call's metrics). Everything public is
importable from ``evaluation.scoring``.

A :class:`Reference` is what the model should have done at one decision point: call these
tools with these arguments, answer, ask for a missing argument, or decline. It comes from a
canonical trajectory (:func:`reference_at`, :func:`references_from_trajectory`: the gold
continuation of a turn) or from a BFCL item with its possible answers (:func:`reference_from_bfcl`).

:func:`score_output` returns an :class:`ItemScore`: boolean metrics (``None`` where a metric
does not apply), call counts, the decision taken, and the annotators' error labels
(``annotate.trajectory.DEFAULT_ERROR_LABELS``) for whatever went wrong. :func:`aggregate`,
:func:`breakdown`, :func:`label_table` and :func:`confusion` turn many of them into the
dashboard's tables, with 95 % Wilson intervals for rates.

Argument matching follows BFCL's AST checker: each argument has a list of acceptable values
(``""`` among them: may be omitted); strings compare after BFCL's normalisation (case, spaces
and ``,./-_*^`` ignored, ``'`` read as ``"``); an int is accepted for a float; a value of the
acceptable value's own type is accepted where the schema says otherwise (BFCL's "variable"
rule); parallel calls match in any order.

Heuristics, where the reference is free text (documented because a user will see them):

- **asks**: the output makes no call and either a question in it mentions a missing required
  argument (its name, the words of its name, or "when"/"where" for dates/places), or its last
  sentence is a question that is not a pleasantry ("anything else?", "how can I help?").
- **declines**: no call, no question of that kind, and a refusal phrase ("I can't", "unable
  to", "no tool", "not available", "sorry", "unfortunately" …), before any tool ran in the turn;
  after a tool ran, reporting a failure is an answer.
- **grounded**: the answer repeats at least one of the *key values* of the tool results: the
  numbers and content words of the results that the gold answer uses and the user did not say
  (all result values where there is no gold answer). After a failed call, naming the failure
  ("error", "failed", "unavailable" …) also counts.
- **answer correct**: the answer repeats every key value the gold answer takes from the tool
  results; where the gold reports a failed call, it reports the failure; otherwise every number
  of the gold answer appears in it and at least 60 % of the gold answer's content words do.

>>> ref = Reference(tools=[{"name": "get_weather", "parameters": {"type": "object",
...     "properties": {"city": {"type": "string"}}, "required": ["city"]}}],
...     calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])
>>> from evaluation.parse import parse_output
>>> score_output(parse_output('get_weather(city="paris")'), ref).correct
True
>>> score_output(parse_output('get_weather()'), ref).labels
['missing_required_arg']
"""

from __future__ import annotations

from evaluation.scoring.answers import STOPWORDS, answer_matches, content_tokens, is_grounded, key_values
from evaluation.scoring.arguments import (
    call_key,
    check_arguments,
    match_calls,
    schema_errors,
    standardize_string,
)
from evaluation.scoring.decisions import DECISION_TABLE, DECISIONS, Outcome, classify_answer, decision_of, decision_outcome
from evaluation.scoring.references import (
    Reference,
    reference_at,
    reference_from_bfcl,
    reference_from_gold_answers,
    reference_output,
    references_from_trajectory,
)
from evaluation.scoring.score import (
    COUNTS,
    LABEL_ORDER,
    METRICS,
    SCORER_VERSION,
    ItemScore,
    checker_versions,
    score_many,
    score_output,
)
from evaluation.scoring.intervals import Z95, mean_interval, rate, wilson_interval
from evaluation.scoring.statistics import aggregate, breakdown, compare_runs, confusion, label_table
from evaluation.scoring.when2call import when2call_table

__all__ = [
    "COUNTS", "DECISIONS", "DECISION_TABLE", "LABEL_ORDER", "METRICS", "STOPWORDS", "Z95", "ItemScore", "Outcome",
    "Reference", "SCORER_VERSION", "aggregate", "checker_versions", "answer_matches", "breakdown", "call_key", "check_arguments", "classify_answer",
    "compare_runs", "confusion", "content_tokens", "decision_of", "decision_outcome", "is_grounded", "key_values",
    "label_table", "match_calls", "mean_interval", "rate", "reference_at", "reference_from_bfcl",
    "reference_from_gold_answers", "reference_output", "references_from_trajectory", "schema_errors", "score_many",
    "score_output", "standardize_string", "when2call_table", "wilson_interval",
]
