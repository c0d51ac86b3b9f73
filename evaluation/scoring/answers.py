"""Grounding and answer correctness: does a free-text answer use the tool results and agree with the gold (pure; no Django)."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evaluation.scoring.references import Reference

_FAILURE_RE = re.compile(
    r"\b(?:error|errors|failed|fails|failure|unavailable|timed? ?out|timeout|could ?n[o']t|couldn't|unable|"
    r"did not work|didn't work|try again|went wrong|not respond)",
    re.IGNORECASE,
)
_NUMBER_RE = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z'\-]+")
STOPWORDS = frozenset(
    """the and for are was were with that this from your you have has had not but can will would could
    should there their they them then than what when where which who whom how why all any some each
    our out into about over under again further once here also just only very too more most other such
    own same both few may might must shall let its it's i'm i've i'll you're we're it is be been being
    does did doing done get got make made please thank thanks sure okay yes here's there's that's
    currently right now today tool tools result results function call called using use used""".split()
)


def _number_token(s: str) -> str:
    s = s.replace(",", "")
    try:
        f = float(s)
    except ValueError:
        return s
    return str(int(f)) if f.is_integer() and abs(f) < 1e15 else repr(f)


def content_tokens(text: str) -> set[str]:
    """Numbers (normalised: ``1,200.0`` -> ``1200``) and lowercased content words of ``text``."""
    tokens = {_number_token(m.group(0)) for m in _NUMBER_RE.finditer(text)}
    tokens |= {w.lower().strip("'-") for w in _WORD_RE.findall(text) if len(w) >= 3 and w.lower() not in STOPWORDS}
    tokens.discard("")
    return tokens


def _result_tokens(text: str) -> set[str]:
    """Tokens of a tool result: of its values only when it is JSON (keys are not facts)."""
    try:
        value = json.loads(text)
    except (ValueError, TypeError, RecursionError):
        return content_tokens(text)
    out: set[str] = set()
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, bool) or v is None:
            continue
        elif isinstance(v, (int, float)):
            out.add(_number_token(repr(v)))
        else:
            out |= content_tokens(str(v))
    return out


def key_values(ref: Reference) -> set[str]:
    """The result values a good answer repeats (see the module notes)."""
    result_tokens: set[str] = set()
    for r in ref.tool_results:
        result_tokens |= _result_tokens(r.get("text", ""))
    result_tokens -= content_tokens(ref.user_text)
    if ref.answer:
        used = result_tokens & content_tokens(ref.answer)
        return used
    return result_tokens


def is_grounded(answer: str, ref: Reference) -> bool | None:
    """Whether ``answer`` uses the tool results; ``None`` where there is nothing to ground on."""
    if not ref.tool_results:
        return None
    keys = key_values(ref)
    failed = [r for r in ref.tool_results if r.get("recent") and not r.get("ok", True)]
    if not keys and not failed:
        return None
    if keys & content_tokens(answer):
        return True
    return bool(failed) and bool(_FAILURE_RE.search(answer))


def answer_matches(answer: str, ref: Reference) -> bool:
    """Whether ``answer`` agrees with the gold answer (see the module notes): it repeats every key
    value the gold answer takes from the tool results; or, where the gold reports a failed call,
    it reports the failure too; otherwise it has every number of the gold answer and at least
    60 % of its content words."""
    got = content_tokens(answer)
    keys = key_values(ref) if ref.tool_results else set()
    if keys:
        return keys <= got
    failed = any(r.get("recent") and not r.get("ok", True) for r in ref.tool_results)
    if failed and _FAILURE_RE.search(ref.answer):
        return bool(_FAILURE_RE.search(answer))
    gold_tokens = content_tokens(ref.answer)
    if not gold_tokens:
        return bool(answer.strip()) or not ref.answer.strip()
    numbers = {t for t in gold_tokens if _NUMBER_RE.fullmatch(t)}
    if not numbers <= got:
        return False
    words = gold_tokens - numbers
    return not words or len(words & got) / len(words) >= 0.6

