"""The scorers as TRL GRPO reward functions (pure; no Django, no trl import).

GRPOTrainer (trl 1.16, ``GRPOTrainer._calculate_rewards``) calls each reward function as
``fn(prompts=…, completions=…, completion_ids=…, **columns)`` where ``columns`` holds every
dataset column other than ``prompt`` (one value per completion) plus ``trainer_state``,
``log_extra`` and ``log_metric``. A completion is a string (standard datasets) or a list of
messages (conversational: the assistant message, already parsed into ``tool_calls`` /
``reasoning_content`` when the tokenizer has a response template, then any ``tool`` replies and
further assistant messages when the trainer ran the tools). Each function returns one float a
completion.

The dataset needs a ``reference`` column: :meth:`evaluation.scoring.Reference.to_dict` (or its
JSON text); a ``tools`` column, as TRL's conversational datasets carry, fills in a reference's
tools when it has none.

Components, in the style of ToolRL (Qian et al., 2025, "ToolRL: Reward is All Tool Learning
Needs"), each in [0, 1] so they can be weighted with ``GRPOConfig.reward_weights``:

- :func:`format_reward`: the output reads in the tool-call format (1) or not (0);
- :func:`schema_reward`: share of the calls that are schema-valid;
- :func:`tool_name_reward`: multiset Jaccard of called and gold tool names;
- :func:`argument_key_reward`: mean Jaccard of argument names over the gold calls, each gold call
  paired with the unused call of the same tool that matches it best;
- :func:`argument_value_reward`: share of the gold arguments given an acceptable value;
- :func:`toolrl_correctness_reward`: ToolRL's combined correctness in [-3, 3],
  ``6 * (names + keys + values) / (1 + |G| + sum |keys|) - 3``;

and a tool-call-count term in the style of OTC (Wang et al., 2025, "Acting Less is Reasoning
More"): :func:`tool_call_count_reward`, ``sin(f(m, n) * pi / 2n)`` with ``f(m, n) = 2nm / (m + n)``
for ``m`` calls made and ``n`` gold calls (``cos(m * pi / (2m + 1))`` when ``n`` is 0), given
only when the goal is reached (OTC multiplies it by the correctness reward).

>>> ref = {"tools": [{"name": "f", "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}}}],
...        "calls": [{"name": "f", "arguments": {"x": 1}}]}
>>> done = [[{"role": "assistant", "content": "", "tool_calls": [{"type": "function",
...          "function": {"name": "f", "arguments": {"x": 1}}}]}]]
>>> toolrl_correctness_reward(prompts=[[]], completions=done, reference=[ref])
[3.0]
>>> twice = '<tool_call>{"name": "f", "arguments": {"x": 1}}</tool_call>' * 2
>>> [round(r, 3) for r in tool_call_count_reward(prompts=[[]], completions=[twice], reference=[ref])]
[0.866]
"""

from __future__ import annotations

import json
import math
from collections import Counter
from functools import lru_cache
from typing import Any

from evaluation.parse import ParsedOutput, ToolCall, parse_output, parsed_from_message
from evaluation.scoring import Reference, decision_of
from evaluation.scoring.arguments import acceptable_calls, check_arguments, schema_errors, value_matches

__all__ = [
    "REWARD_FUNCS",
    "argument_key_reward",
    "argument_value_reward",
    "format_reward",
    "schema_reward",
    "tool_call_count_reward",
    "tool_name_reward",
    "toolrl_correctness_reward",
]


# ---------------------------------------------------------------------------------------------
# Reading what GRPOTrainer passes


def read_completion(completion: Any, tools: list[dict] | None = None) -> ParsedOutput:
    """One completion (a string, a message, or a list of messages) as a :class:`ParsedOutput`.

    With several assistant messages (the trainer ran the tools in between), the calls of all of
    them count, the answer is the last one's, and format errors of any of them count.
    """
    if isinstance(completion, str):
        return parse_output(completion, tools=tools)
    if isinstance(completion, dict):
        return parsed_from_message(completion, tools=tools)
    if not isinstance(completion, list):
        return ParsedOutput(raw=repr(completion), format_errors=["completion is neither text nor messages"])
    turns = [parsed_from_message(m, tools=tools) for m in completion if isinstance(m, dict) and m.get("role", "assistant") == "assistant"]
    if not turns:
        return ParsedOutput(raw="", format_errors=["no assistant message in the completion"])
    if len(turns) == 1:
        return turns[0]
    merged = ParsedOutput(raw="\n".join(t.raw for t in turns), parser=turns[0].parser)
    for t in turns:
        merged.tool_calls.extend(t.tool_calls)
        merged.format_errors.extend(t.format_errors)
        merged.call_attempted = merged.call_attempted or t.call_attempted
    merged.reasoning = "\n".join(t.reasoning for t in turns if t.reasoning)
    merged.answer = turns[-1].answer
    # Intermediate assistant messages that only call are fine; only the last must not be empty.
    merged.format_errors = [e for t in turns[:-1] for e in t.format_errors if not e.startswith("empty")] + turns[-1].format_errors
    return merged


@lru_cache(maxsize=8192)
def _read_cached(completion_json: str, tools_json: str) -> ParsedOutput:
    tools = json.loads(tools_json) or None
    return read_completion(json.loads(completion_json), tools=tools)


@lru_cache(maxsize=8192)
def _reference_cached(reference_json: str, tools_json: str) -> Reference:
    d = json.loads(reference_json)
    if not d.get("tools") and tools_json != "null":
        # TRL's tools column: a list of schemas, each possibly stored as JSON text (datasets.Json).
        tools = json.loads(tools_json)
        tools = json.loads(tools) if isinstance(tools, str) else tools
        d["tools"] = [json.loads(t) if isinstance(t, str) else t for t in tools or []]
    return Reference.from_dict(d)


def _pairs(completions: list, kwargs: dict) -> list[tuple[ParsedOutput, Reference]]:
    """The parsed completions with their references. Each reward function gets the same
    completions, so parses are cached by content."""
    references = kwargs.get("reference")
    if references is None:
        raise ValueError(
            "the dataset needs a 'reference' column (evaluation.scoring.Reference.to_dict()) for these reward functions"
        )
    tools_column = kwargs.get("tools") or [None] * len(completions)
    out = []
    for completion, reference, tools in zip(completions, references, tools_column, strict=True):
        reference_json = reference if isinstance(reference, str) else json.dumps(reference, sort_keys=True, default=str)
        tools_json = json.dumps(tools, sort_keys=True, default=str)
        ref = _reference_cached(reference_json, tools_json)
        parsed = _read_cached(json.dumps(completion, sort_keys=True, default=str), json.dumps(ref.tools, sort_keys=True))
        out.append((parsed, ref))
    return out


# ---------------------------------------------------------------------------------------------
# The components


def format_reward(prompts=None, completions=None, completion_ids=None, **kwargs) -> list[float]:
    """1.0 when the output reads in a tool-call format (no malformed call, not empty), else 0.0."""
    return [1.0 if parsed.format_ok else 0.0 for parsed, _ in _pairs(completions, kwargs)]


def schema_reward(prompts=None, completions=None, completion_ids=None, **kwargs) -> list[float]:
    """Share of the calls that name a known tool with schema-valid arguments; with no call, 1.0
    where no call was wanted and 0.0 where one was."""
    out = []
    for parsed, ref in _pairs(completions, kwargs):
        if not parsed.tool_calls:
            out.append(0.0 if ref.decision == "call" or parsed.call_attempted else 1.0)
            continue
        valid = sum(1 for c in parsed.tool_calls if not schema_errors(c, ref.tool(c.name)))
        out.append(valid / len(parsed.tool_calls))
    return out


def tool_name_reward(prompts=None, completions=None, completion_ids=None, **kwargs) -> list[float]:
    """ToolRL's name term: multiset Jaccard of the called and the gold tool names (1.0 when
    neither calls anything).

    Ranks a right call above an unneeded one: making the needed call with the right arguments
    scores higher than also, or instead, calling a tool that was not needed (tests/rl/test_reward_claims.py)."""
    return [_toolrl_terms(parsed, ref)["name"] for parsed, ref in _pairs(completions, kwargs)]


def argument_key_reward(prompts=None, completions=None, completion_ids=None, **kwargs) -> list[float]:
    """ToolRL's argument-name term, divided by the number of gold calls: in [0, 1]. An extra call
    of a tool that was not needed does not lower it (the name and count terms price that)."""
    out = []
    for parsed, ref in _pairs(completions, kwargs):
        t = _toolrl_terms(parsed, ref)
        out.append(t["keys"] / t["n_gold"] if t["n_gold"] else t["name"])
    return out


def argument_value_reward(prompts=None, completions=None, completion_ids=None, **kwargs) -> list[float]:
    """ToolRL's argument-value term, divided by the number of gold arguments: in [0, 1]. An extra
    call of a tool that was not needed does not lower it (the name and count terms price that)."""
    out = []
    for parsed, ref in _pairs(completions, kwargs):
        t = _toolrl_terms(parsed, ref)
        if t["n_keys"]:
            out.append(t["values"] / t["n_keys"])
        else:  # no gold argument to get right: as right as the argument names
            out.append(t["keys"] / t["n_gold"] if t["n_gold"] else t["name"])
    return out


def toolrl_correctness_reward(prompts=None, completions=None, completion_ids=None, **kwargs) -> list[float]:
    """ToolRL's correctness reward in [-3, 3]; where no call is wanted, 3 without a call and -3 with one.

    Ranks a right call above an unneeded one: making the needed call with the right arguments
    scores higher than also, or instead, calling a tool that was not needed (tests/rl/test_reward_claims.py)."""
    out = []
    for parsed, ref in _pairs(completions, kwargs):
        t = _toolrl_terms(parsed, ref)
        if not t["n_gold"]:
            out.append(3.0 if not parsed.call_attempted else -3.0)
            continue
        s_max = 1 + t["n_gold"] + t["n_keys"]
        out.append(round(6 * (t["name"] + t["keys"] + t["values"]) / s_max - 3, 6))
    return out


def tool_call_count_reward(prompts=None, completions=None, completion_ids=None, **kwargs) -> list[float]:
    """OTC's tool-use term for ``m`` calls made against ``n`` gold calls, given when the goal is
    reached (every gold call made correctly, or the right no-call decision), else 0.0.

    Ranks a right call above an unneeded one: making the needed call with the right arguments
    scores higher than also, or instead, calling a tool that was not needed (tests/rl/test_reward_claims.py)."""
    out = []
    for parsed, ref in _pairs(completions, kwargs):
        if not _goal_reached(parsed, ref):
            out.append(0.0)
            continue
        out.append(round(otc_tool_reward(len(parsed.tool_calls), len(acceptable_calls(ref))), 6))
    return out


REWARD_FUNCS = (
    format_reward,
    schema_reward,
    tool_name_reward,
    argument_key_reward,
    argument_value_reward,
    tool_call_count_reward,
)


# ---------------------------------------------------------------------------------------------
# The arithmetic


def otc_tool_reward(m: int, n: int, c: float = 1.0) -> float:
    """OTC's r_tool: 1 at the optimal number of calls, falling off on both sides.

    >>> [round(otc_tool_reward(m, 1), 3) for m in range(4)]
    [0.0, 1.0, 0.866, 0.707]
    >>> [round(otc_tool_reward(m, 0), 3) for m in range(3)]
    [1.0, 0.5, 0.309]
    """
    if n == 0:
        return 1.0 if m == 0 else math.cos(m * math.pi / (2 * m + c))
    f = 2 * n * m / (m + n)
    return math.sin(f * math.pi / (2 * n))


def multiset_jaccard(a: list, b: list) -> float:
    """|a ∩ b| / |a ∪ b| counting repeats; 1.0 when both are empty."""
    if not a and not b:
        return 1.0
    ca, cb = Counter(a), Counter(b)
    inter = sum((ca & cb).values())
    return inter / (len(a) + len(b) - inter)


def _toolrl_terms(parsed: ParsedOutput, ref: Reference) -> dict:
    """ToolRL's three match terms. Each gold call takes the unused call of the same tool that
    scores best on keys + values (ToolRL pairs greedily in gold order). A gold call's keys are
    the arguments it cannot do without (those not marked omittable)."""
    gold = acceptable_calls(ref)
    name = multiset_jaccard([c.name for c in parsed.tool_calls], [n for n, _ in gold])
    nested = ref.acceptable is not None
    used: set[int] = set()
    keys_total = values_total = 0.0
    n_keys = 0
    for gname, acceptable in gold:
        gold_keys = {k for k, values in acceptable.items() if "" not in values}
        n_keys += len(gold_keys)
        best, best_i, best_k, best_v = -1.0, None, 0.0, 0.0
        for i, call in enumerate(parsed.tool_calls):
            if i in used or call.name != gname:
                continue
            k, v = _pair_terms(call, gold_keys, acceptable, nested)
            if k + v > best:
                best, best_i, best_k, best_v = k + v, i, k, v
        if best_i is not None:
            used.add(best_i)
            keys_total += best_k
            values_total += best_v
    return {"name": name, "keys": keys_total, "values": values_total, "n_gold": len(gold), "n_keys": n_keys}


def _pair_terms(call: ToolCall, gold_keys: set, acceptable: dict, nested: bool) -> tuple[float, float]:
    given = set(call.arguments)
    # An optional argument given with an acceptable value is neither missing nor extra.
    neutral = {
        k
        for k in given - gold_keys
        if k in acceptable and "" in acceptable[k] and value_matches(call.arguments[k], acceptable[k], nested)
    }
    given -= neutral
    union = given | gold_keys
    keys = len(given & gold_keys) / len(union) if union else 1.0
    values = sum(1 for k in gold_keys if k in call.arguments and value_matches(call.arguments[k], acceptable.get(k, []), nested))
    return keys, float(values)


def _goal_reached(parsed: ParsedOutput, ref: Reference) -> bool:
    """Every gold call made with acceptable arguments (extra calls are what the count term
    prices), or the right no-call decision."""
    if ref.decision != "call":
        decision = decision_of(parsed, ref)
        return decision == ref.decision or (ref.lenient_decline and decision == "answer")
    nested = ref.acceptable is not None
    free = list(parsed.tool_calls)
    for name, acceptable in acceptable_calls(ref):
        hit = next((c for c in free if c.name == name and not check_arguments(c, acceptable, ref.tool(name), nested)), None)
        if hit is None:
            return False
        free.remove(hit)
    return True
