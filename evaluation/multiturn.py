"""Multi-turn evaluation against tool environments (pure; no Django).

A :class:`MultiTurnItem` is a conversation of several user turns, the environment its tools run in
(:mod:`evaluation.environments.spec`, reset from ``row``) and the gold calls of every turn. It is
*played*: the first user turn is given; each call the model makes runs in the item's environment
(a fresh one, in a child process: :class:`~evaluation.environments.sandbox.Episode`) and its result
is fed back, until the model answers or hits the step limit; then the turn is checked and the
next user turn follows. Items play in lockstep, so every round is one batch for the generator.

A turn is checked as BFCL's multi-turn checker checks it (``multi_turn_checker.py``): the turn's
gold calls run against a second fresh environment, then, where the gold turn has calls, the model
must have made at least one call (``empty_turn_model_response``), every instance's public state
must equal the gold's (``instance_state_mismatch``), and every gold result must be among the
results of all the model's calls so far, in any order (``execution_response_mismatch``). A turn
with no gold call (the model cannot do it: a missing function or parameter) is not checked, as in
BFCL. A turn that hits the step limit fails (BFCL fails a force-terminated entry). The item passes
when every turn does; BFCL stops at the first failing turn, which is reported, and the later turns
are still checked and shown (their state follows the model's own earlier actions).

An environment failure (a tool that hangs, crashes, exhausts memory or floods its output) ends the
item's episode with a labelled ``error``; the run goes on.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

from annotate.formats.bfcl_multi_turn import case_types_of
from evaluation.environments import bfcl
from evaluation.environments.sandbox import Episode, EpisodeFailed, Limits
from evaluation.items import EvalItem
from evaluation.parse import ParsedOutput

MODE = "multi_turn"
# BFCL's user message for a turn where held-out functions become available
# (bfcl_eval/constants/default_prompts.py: DEFAULT_USER_PROMPT_FOR_ADDITIONAL_FUNCTION_FC).
ADDED_FUNCTIONS_PROMPT = "I have updated some more functions you can choose from. What about now?"
MAX_PLAYING = 16  # episodes (child processes) alive at once
LABELS = {"multi_turn:empty_turn_model_response": "missed_tool_call",
          "multi_turn:instance_state_mismatch": "unintended_state_change",
          "multi_turn:execution_response_mismatch": "goal_partially_completed",
          "multi_turn:force_terminated": "wrong_call_count"}
_INDEX = re.compile(r"_\d+(?:-\d+)*$")


@dataclass
class MultiTurnItem:
    """One multi-turn conversation to play (see the module docstring)."""

    id: str
    turns: list[list[dict]]  # the user messages of each turn ([] where held-out tools arrive)
    tools: list[dict]  # OpenAI function specs
    environment: dict  # evaluation.environments.spec
    ground_truth: list[list]  # per turn: BFCL call texts or {"name", "arguments"}
    row: dict = field(default_factory=dict)  # reset(**row)
    system: str = ""
    holdout: dict = field(default_factory=dict)  # "turn index" -> tool names available from then on
    case_types: list[str] = field(default_factory=list)
    trajectory_id: int | None = None
    mode: str = MODE

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MultiTurnItem":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    def tools_at(self, turn: int) -> list[dict]:
        """The tools the model sees in ``turn``: all but those held out until a later turn."""
        later = {name for t, names in self.holdout.items() if int(t) > turn for name in names}
        return [t for t in self.tools if _tool_name(t) not in later]


def is_multi_turn(document: dict) -> bool:
    return isinstance(document, dict) and document.get("mode") == MODE


def _tool_name(tool: dict) -> str:
    return str((tool.get("function") or tool).get("name", ""))


def item_from_bfcl(record: dict, answer: dict, tools: list[dict] | None = None,
                   trajectory_id: int | None = None) -> MultiTurnItem:
    """An item from a BFCL multi-turn question and its possible answer (``ground_truth``).
    ``tools``: the function specs (default: BFCL's docs of the involved classes)."""
    classes = list(record.get("involved_classes") or [])
    category = _INDEX.sub("", str(record.get("id", "")))
    system = "\n\n".join(m.get("content", "") for m in (record.get("question") or [[]])[0] if m.get("role") == "system")
    turns = [[m for m in turn if m.get("role") == "user"] for turn in record.get("question") or []]
    return MultiTurnItem(
        id=str(record.get("id", "")), turns=turns, tools=tools if tools is not None else bfcl.func_docs(classes),
        environment={"kind": "bfcl", "classes": classes}, ground_truth=list(answer.get("ground_truth") or []),
        row={"initial_config": record.get("initial_config") or {},
             "long_context": "long_context" in category or "composite" in category},
        system=system, holdout=dict(record.get("missed_function") or {}), case_types=case_types_of(category),
        trajectory_id=trajectory_id)


def environment_of(traj) -> dict | None:
    """The environment a trajectory names, or None (then it is evaluated one decision at a time):
    ``meta.extra["environment"]`` (a spec: a registered class, or ``{"kind": "replay"}``), or BFCL's
    ``involved_classes`` kept by the BFCL multi-turn import."""
    extra = traj.meta.extra or {}
    if isinstance(extra.get("environment"), dict):
        return dict(extra["environment"])
    if extra.get("involved_classes") and isinstance((traj.meta.reference or {}), dict) \
            and "ground_truth" in (traj.meta.reference or {}):
        return {"kind": "bfcl", "classes": list(extra["involved_classes"])}
    return None


def item_from_trajectory(traj, ident: str, tools: list[dict], trajectory_id: int | None = None) -> MultiTurnItem:
    """A multi-turn item from a trajectory that names its environment (:func:`environment_of`).
    The gold calls per turn are ``meta.reference["ground_truth"]`` when given (BFCL's), else the
    trajectory's own tool calls; a replay is answered from the trajectory's own tool results.

    >>> from annotate.trajectory import Trajectory
    >>> t = Trajectory.from_dict({"turns": [{"user": "Weather in Paris?", "steps": [
    ...     {"kind": "tool_call", "name": "get_weather", "arguments": {"city": "Paris"}, "call_id": "c1"},
    ...     {"kind": "tool_result", "name": "get_weather", "text": "18C", "call_id": "c1"},
    ...     {"kind": "answer", "text": "18C."}]}], "meta": {"extra": {"environment": {"kind": "replay"}}}})
    >>> item = item_from_trajectory(t, "w", [])
    >>> item.ground_truth, item.row["recorded"]
    ([[{'name': 'get_weather', 'arguments': {'city': 'Paris'}}]], [{'name': 'get_weather', 'arguments': {'city': 'Paris'}, 'text': '18C'}])
    """
    spec = environment_of(traj)
    if spec is None:
        raise ValueError("the trajectory names no environment")
    extra = traj.meta.extra or {}
    reference = traj.meta.reference if isinstance(traj.meta.reference, dict) else {}
    gold = reference.get("ground_truth")
    if not isinstance(gold, list) or len(gold) != len(traj.turns):
        gold = [[{"name": s.name, "arguments": s.arguments if isinstance(s.arguments, dict) else {}}
                 for s in turn.steps if s.kind == "tool_call"] for turn in traj.turns]
    row: dict = dict(extra.get("row") or {})
    if spec.get("kind") == "bfcl":
        category = _INDEX.sub("", traj.meta.external_id or "")
        row = {"initial_config": extra.get("initial_config") or {},
               "long_context": "long_context" in category or "composite" in category}
    elif spec.get("kind") == "replay":
        row = {"recorded": _recorded(traj)}
    holdout = {str(k): list(v) for k, v in (extra.get("missed_function") or {}).items()}
    turns = [[] if not turn.user and str(i) in holdout else [{"role": "user", "content": turn.user}]
             for i, turn in enumerate(traj.turns)]
    return MultiTurnItem(id=ident, turns=turns, tools=list(tools), environment=spec, ground_truth=gold, row=row,
                         system=traj.system or "", holdout=holdout, case_types=list(traj.meta.case_types),
                         trajectory_id=trajectory_id)


def _recorded(traj) -> list[dict]:
    """Every tool call of the trajectory with its result (matched by call id, else in order)."""
    out = []
    for turn in traj.turns:
        pending = []
        for s in turn.steps:
            if s.kind == "tool_call":
                pending.append(s)
            elif s.kind == "tool_result" and pending:
                call = next((c for c in pending if s.call_id and c.call_id == s.call_id), pending[0])
                pending.remove(call)
                out.append({"name": call.name, "arguments": call.arguments if isinstance(call.arguments, dict) else {},
                            "text": s.text})
    return out


def item_from_document(document: dict):
    """An eval set's stored item: a :class:`MultiTurnItem` or an ``evaluation.items.EvalItem``."""
    return MultiTurnItem.from_dict(document) if is_multi_turn(document) else EvalItem.from_dict(document)


# --- playing -----------------------------------------------------------------------------------

Parser = Callable[[Any, Any], ParsedOutput]


class _Play:
    """One item being played: its episode, the conversation so far and the turns' records."""

    def __init__(self, item: MultiTurnItem, max_steps: int, limits: Limits, allowed: list[str]):
        self.item, self.max_steps = item, max_steps
        # A registered class's tools, when the item lists none, are read from the class (in the child).
        schemas = not item.tools and item.environment.get("kind") == "python"
        self.episode = Episode(item.environment, item.row, limits=limits, allowed=allowed, schemas=schemas)
        self.messages: list[dict] = [{"role": "system", "content": item.system}] if item.system else []
        self.turns: list[dict] = []
        self.turn = -1
        self.done = False
        self.error_kind = self.error = ""
        self.prompt_text = ""
        self.seconds = 0.0
        self.new_tokens = 0
        try:
            self.episode.start()
            if self.episode.tools:
                item.tools = self.episode.tools
            self._next_turn()
        except EpisodeFailed as exc:
            self._fail(exc)

    @property
    def record(self) -> dict:
        return self.turns[-1]

    def conversation(self) -> tuple[list[dict], list[dict]]:
        return self.messages, self.item.tools_at(self.turn)

    def _next_turn(self) -> None:
        self.turn += 1
        if self.turn >= len(self.item.turns):
            self._finish()
            return
        users = self.item.turns[self.turn]
        added = list(self.item.holdout.get(str(self.turn)) or [])
        if not users:
            users = [{"role": "user", "content": ADDED_FUNCTIONS_PROMPT}] if added else [{"role": "user", "content": ""}]
        self.messages = self.messages + [{"role": "user", "content": m.get("content", "")} for m in users]
        self.turns.append({"index": self.turn, "user": "\n\n".join(m.get("content", "") for m in users),
                           "tools_added": added, "steps": [], "ended": "", "answer": "",
                           "gold": self.item.ground_truth[self.turn] if self.turn < len(self.item.ground_truth) else [],
                           "check": None})

    def take(self, g, parsed: ParsedOutput) -> None:
        """Record one model output; run its calls, or end the turn."""
        if not self.prompt_text:
            self.prompt_text = g.prompt_text
        self.seconds += g.seconds
        self.new_tokens += g.new_tokens
        step: dict[str, Any] = {"raw": g.text, "parsed": parsed.to_dict(), "calls": []}
        self.record["steps"].append(step)
        if g.error:
            self.error_kind, self.error = "generation", g.error
            self._finish()
            return
        if not parsed.call_attempted:
            self.record["answer"] = parsed.answer or ""
            self.messages = self.messages + [{"role": "assistant", "content": parsed.answer or ""}]
            self._end_turn("answered")
            return
        if not parsed.tool_calls:
            self.messages = self.messages + [{"role": "assistant", "content": g.text}]
            self._end_turn("format_error")
            return
        calls = [{"id": f"call_{self.turn}_{len(self.record['steps'])}_{i}", "type": "function",
                  "function": {"name": c.name, "arguments": c.arguments}} for i, c in enumerate(parsed.tool_calls)]
        texts = []  # what the model reads back, whole; the transcript keeps a readable cut
        try:
            for c in parsed.tool_calls:
                result = self.episode.call(c.name, c.arguments)
                texts.append(result.text)
                step["calls"].append({"name": c.name, "arguments": c.arguments, "ok": result.ok,
                                      "result": _cut(result.text)})
        except EpisodeFailed as exc:
            self._fail(exc)
            return
        msg: dict[str, Any] = {"role": "assistant", "content": parsed.answer or "", "tool_calls": calls}
        if parsed.reasoning:
            msg["reasoning_content"] = parsed.reasoning
        self.messages = self.messages + [msg] + [
            {"role": "tool", "tool_call_id": call["id"], "name": made["name"], "content": text}
            for call, made, text in zip(calls, step["calls"], texts)]
        if len(self.record["steps"]) >= self.max_steps:
            self._end_turn("step_limit")

    def _end_turn(self, ended: str) -> None:
        self.record["ended"] = ended
        try:
            self.record["check"] = self._check()
        except EpisodeFailed as exc:
            self._fail(exc)
            return
        self._next_turn()

    def _check(self) -> dict:
        gold = self.record["gold"]
        verdict = self.episode.check(gold)  # always: the gold environment follows every turn
        if not gold:
            return {"valid": True, "checked": False,
                    "message": "no gold call in this turn (the model cannot do it): not checked, as in BFCL"}
        made = sum(len(s["calls"]) for s in self.record["steps"])
        if made == 0:
            return {"valid": False, "checked": True, "error_type": "multi_turn:empty_turn_model_response",
                    "message": f"the model made no call in turn {self.turn}; the gold makes {len(gold)}",
                    "gold_results": verdict.get("gold_results", [])}
        if verdict.get("valid") and self.record["ended"] == "step_limit":
            return {"valid": False, "checked": True, "error_type": "multi_turn:force_terminated",
                    "message": f"still calling tools after {self.max_steps} steps (BFCL fails a force-terminated entry)",
                    "gold_results": verdict.get("gold_results", [])}
        return {**verdict, "checked": True}

    def _fail(self, exc: EpisodeFailed) -> None:
        self.error_kind, self.error = exc.kind, exc.message
        if self.turns and not self.record["ended"]:
            self.record["ended"] = "error"
        self._finish()

    def _finish(self) -> None:
        self.done = True
        self.episode.close()

    def summary(self) -> dict:
        checks = [t["check"] for t in self.turns]
        failing = [t["index"] for t in self.turns if t["check"] is not None and not t["check"]["valid"]]
        complete = not self.error and len(self.turns) == len(self.item.turns) and all(c is not None for c in checks)
        return {"mode": MODE, "turns": self.turns, "n_turns": len(self.item.turns),
                "passed_turns": sum(1 for c in checks if c is not None and c["valid"]),
                "first_failing_turn": failing[0] if failing else None,
                "valid": complete and not failing, "error_kind": self.error_kind, "error": self.error,
                "environment": self.item.environment}


def _cut(text: str, limit: int = 20_000) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n... ({len(text)} characters in all)"


def labels_of(summary: dict) -> list[str]:
    """The step-error labels of an episode: the first failing turn's, or the environment's fault."""
    if summary.get("error_kind") and summary["error_kind"] != "generation":
        return ["tool_execution_error"]
    first = summary.get("first_failing_turn")
    if first is None:
        return []
    check = summary["turns"][first]["check"] or {}
    return [LABELS.get(check.get("error_type", ""), "goal_partially_completed")]


def play_items(items: Sequence[MultiTurnItem], generator, parse: Parser, *, max_steps: int,
               limits: Limits | None = None, allowed: Sequence[str] = ()) -> list[dict]:
    """Play every item to the end; one results line (a dict) per item, in order."""
    limits = limits or Limits()
    lines: list[dict] = []
    for start in range(0, len(items), MAX_PLAYING):
        plays: list[_Play] = []
        try:
            for it in items[start:start + MAX_PLAYING]:  # (inside the try: a failed start closes the others)
                plays.append(_Play(it, max_steps, limits, list(allowed)))
            active = [p for p in plays if not p.done]
            while active:
                gens = generator.generate([p.conversation() for p in active])
                for p, g in zip(active, gens):
                    p.take(g, parse(g, p.item))
                active = [p for p in active if not p.done]
        finally:
            for p in plays:
                p.episode.close()
        lines.extend(result_line(p) for p in plays)
    return lines


def result_line(play: _Play) -> dict:
    """One line of ``results.jsonl`` for a played item (``score`` stays null: the verdict is the
    episode's, ``correct`` and ``labels`` carry it)."""
    summary = play.summary()
    last = next((s for t in reversed(play.turns) for s in reversed(t["steps"])), None)
    error = f"{summary['error_kind']}: {summary['error']}" if summary["error_kind"] else ""
    return {"item_id": play.item.id, "mode": MODE, "case_types": play.item.case_types,
            "prompt_text": play.prompt_text, "raw": last["raw"] if last else "",
            "parsed": last["parsed"] if last else {}, "score": None, "episode": summary,
            "correct": None if summary["error_kind"] else summary["valid"], "labels": labels_of(summary),
            "error": error, "seconds": round(play.seconds, 4), "new_tokens": play.new_tokens}


# --- the dashboard's numbers -------------------------------------------------------------------

def multi_turn_table(episodes: list[dict]) -> dict:
    """Per-turn success over a run's multi-turn episodes: items passed, each turn's pass rate,
    where the first failure falls, and environment failures by kind."""
    played = [e for e in episodes if e.get("mode") == MODE]
    by_turn: dict[int, list[int]] = {}
    first: dict[str, int] = {}
    errors: dict[str, int] = {}
    for e in played:
        if e.get("error_kind"):
            errors[e["error_kind"]] = errors.get(e["error_kind"], 0) + 1
        for t in e.get("turns") or []:
            check = t.get("check")
            if check is not None:
                cell = by_turn.setdefault(int(t["index"]), [0, 0])
                cell[0] += bool(check.get("valid"))
                cell[1] += 1
        key = "none" if e.get("first_failing_turn") is None else str(e["first_failing_turn"])
        if not e.get("error_kind"):
            first[key] = first.get(key, 0) + 1
    scored = [e for e in played if not e.get("error_kind")]
    return {"n": len(played), "passed": sum(1 for e in scored if e.get("valid")), "scored": len(scored),
            "turns": [{"turn": k, "passed": v[0], "n": v[1], "rate": round(v[0] / v[1], 4) if v[1] else None}
                      for k, v in sorted(by_turn.items())],
            "first_failing_turn": first, "environment_errors": errors}


def transcript(summary: dict) -> list[dict]:
    """The episode as a readable list of turns for the dashboard: who said what, each call with its
    arguments as JSON text and its result, and the turn's verdict."""
    out = []
    for t in summary.get("turns") or []:
        steps = []
        for s in t.get("steps") or []:
            parsed = s.get("parsed") or {}
            steps.append({"reasoning": parsed.get("reasoning", ""), "answer": parsed.get("answer", ""),
                          "calls": [{**c, "arguments_text": json.dumps(c.get("arguments"), ensure_ascii=False)}
                                    for c in s.get("calls") or []],
                          "format_errors": parsed.get("format_errors") or [], "raw": s.get("raw", "")})
        out.append({**t, "steps": steps, "gold_text": [g if isinstance(g, str) else json.dumps(g) for g in t.get("gold") or []]})
    return out
