"""The Django side of multi-turn evaluation: items from trajectories that name an environment, the
settings a run's episodes get, and a failed episode sent back to annotation or made into a pair
(``evaluation.jobs`` calls these; the playing and checking are ``evaluation.multiturn``'s).

Nothing here imports BFCL's code: a BFCL item's tools are BFCL's function docs read as JSON, and a
gold call's positional arguments are named from those docs.
"""

from __future__ import annotations

from django.conf import settings

from annotate import pairs as core
from annotate.trajectory import Step, Trajectory
from evaluation.environments import bfcl
from evaluation.environments.base import EnvironmentRefused, parse_call_string
from evaluation.models import EvalItemResult
from evaluation.to_annotation import save_draft_pair, save_draft_trajectory
from evaluation.multiturn import MultiTurnItem, environment_of, item_from_trajectory, transcript
from training.render import to_conversation


def environment_classes() -> list[str]:
    """The environment classes an admin registered (``STUDIO_ENVIRONMENT_CLASSES``)."""
    return list(getattr(settings, "ENVIRONMENT_CLASSES", []))


def environment_limits() -> dict:
    """Each episode's limits (``evaluation.environments.sandbox.Limits``) from the settings."""
    return {"seconds": float(getattr(settings, "ENVIRONMENT_SECONDS", 30)),
            "memory_mb": int(getattr(settings, "ENVIRONMENT_MEMORY_MB", 2048)),
            "network": bool(getattr(settings, "ENVIRONMENT_NETWORK", False))}


def multi_turn_item(doc: Trajectory, ident: str, template, trajectory_id: int) -> MultiTurnItem:
    """The multi-turn item of a trajectory naming its environment, its tools in the template's
    shapes (BFCL's function docs from the wheel for a BFCL item imported without tools).
    :class:`EnvironmentRefused` for an unregistered class or unreadable docs."""
    spec = environment_of(doc)
    if spec is None:
        raise EnvironmentRefused(f"trajectory #{trajectory_id} names no environment", "filters")
    if doc.tools:
        tools = to_conversation(Trajectory(tools=doc.tools), template).tools
    elif spec.get("kind") == "bfcl":
        try:
            tools = bfcl.func_docs(spec["classes"])
        except (OSError, ValueError) as exc:
            raise EnvironmentRefused(f"trajectory #{trajectory_id}: BFCL's function docs cannot be read ({exc})",
                                     "filters") from None
    else:
        tools = []
    if spec.get("kind") == "python" and spec.get("class") not in environment_classes():
        raise EnvironmentRefused(f"trajectory #{trajectory_id} names the environment class {spec.get('class')!r}, "
                                 f"which is not registered (STUDIO_ENVIRONMENT_CLASSES)", "filters")
    return item_from_trajectory(doc, ident, tools, trajectory_id)


# --- closing the loop --------------------------------------------------------------------------

def _canonical_tools(item: MultiTurnItem) -> list[dict]:
    return [dict(t.get("function") or t) for t in item.tools]


def _named(call, item: MultiTurnItem) -> tuple[str, dict]:
    """A gold call as (name, arguments): BFCL's call text with positional arguments named in the
    order of the tool's documented parameters."""
    if isinstance(call, dict):
        return str(call.get("name", "")), dict(call.get("arguments") or {})
    name, args, kwargs = parse_call_string(str(call))
    if args:
        tool = next((t for t in _canonical_tools(item) if t.get("name") == name), {})
        params = list(((tool.get("parameters") or {}).get("properties") or {}))
        kwargs = {**dict(zip(params, args)), **kwargs}
    return name, kwargs


def _model_steps(turn: dict, prefix: str) -> list[Step]:
    steps = []
    for k, s in enumerate(turn["steps"]):
        if s["reasoning"]:
            steps.append(Step(kind="think", text=s["reasoning"]))
        for i, c in enumerate(s["calls"]):
            cid = f"{prefix}s{k}c{i}"
            steps.append(Step(kind="tool_call", name=c["name"],
                              arguments=c["arguments"] if isinstance(c["arguments"], dict) else {}, call_id=cid))
            steps.append(Step(kind="tool_result", name=c["name"], text=c["result"], call_id=cid, ok=bool(c["ok"])))
        if not s["calls"]:
            steps.append(Step(kind="answer", text=s["answer"] or s["raw"]))
    return steps


def _gold_steps(turn: dict, item: MultiTurnItem, prefix: str) -> list[Step]:
    results = list((turn.get("check") or {}).get("gold_results") or [])
    steps = []
    for i, call in enumerate(turn.get("gold") or []):
        name, arguments = _named(call, item)
        cid = f"{prefix}g{i}"
        steps.append(Step(kind="tool_call", name=name, arguments=arguments, call_id=cid))
        if i < len(results):
            steps.append(Step(kind="tool_result", name=name, text=results[i], call_id=cid))
    return steps


def episode_trajectory(result: EvalItemResult) -> tuple[MultiTurnItem, Trajectory, int | None]:
    """The played episode as a trajectory (the model's calls with their results, turn by turn),
    with the environment kept in its metadata so it can be played again once corrected."""
    item = MultiTurnItem.from_dict(result.set_item.document)
    episode = result.episode or {}
    turns = [{"user": t["user"], "steps": [s.to_dict() for s in _model_steps(t, f"t{t['index']}")]}
             for t in transcript(episode)]
    traj = Trajectory.from_dict({"system": item.system, "tools": _canonical_tools(item), "turns": turns})
    extra = {"environment": item.environment, "row": item.row}
    if item.environment.get("kind") == "bfcl":
        extra = {"involved_classes": item.environment.get("classes"),
                 "initial_config": item.row.get("initial_config") or {}}
    if item.holdout:
        extra["missed_function"] = item.holdout
    traj.meta.reference = {"ground_truth": item.ground_truth}
    traj.meta.extra = extra
    traj.meta.case_types = list(item.case_types)
    return item, traj, episode.get("first_failing_turn")


def send_to_annotation(result: EvalItemResult, *, user):
    """A draft trajectory of the episode, the first failing turn's first step labelled with what
    went wrong, for an annotator to correct."""
    run = result.run
    item, traj, failing = episode_trajectory(result)
    check = ((result.episode or {}).get("turns") or [{}])[failing].get("check") if failing is not None else None
    reason = (check or {}).get("message") or (result.error or "")
    if failing is not None and traj.turns[failing].steps:
        first = next((s for s in traj.turns[failing].steps if s.kind != "think"), traj.turns[failing].steps[0])
        known = set(run.project.label_names())
        first.labels = sorted({lab for lab in result.labels if lab in known})
        first.note = f"Turn {failing} failed: {reason}"[:1000]
    traj.meta.extra.update({"eval_run": run.pk, "eval_item": result.item_id, "labels": list(result.labels),
                            "first_failing_turn": failing,
                            "source_trajectory": result.set_item.trajectory_id if result.set_item else None})
    return save_draft_trajectory(result, traj, user=user, tags=("multi-turn",))


def make_pair(result: EvalItemResult, *, user):
    """A draft pair at the first failing turn: the conversation up to its user message (the model's
    own earlier turns) as context, the gold calls with their results chosen, the model's steps in
    that turn rejected. ``annotate.pairs.PairError`` when it is not acceptable (nothing failed)."""
    run = result.run
    item, traj, failing = episode_trajectory(result)
    if failing is None:
        raise core.PairError("no turn of this episode failed: there is nothing to reject")
    turn = transcript(result.episode)[failing]
    context = Trajectory.from_dict({**traj.to_dict(), "turns": [t.to_dict() for t in traj.turns[:failing]]
                                    + [{"user": turn["user"], "steps": []}]})
    context.meta.extra = {}
    chosen = _gold_steps(turn, item, f"t{failing}")
    rejected = _model_steps(turn, f"t{failing}")
    reason = (turn.get("check") or {}).get("message", "")
    note = f"From evaluation run #{run.pk} ({run.name}), item {result.item_id}, turn {failing}: {reason}".strip()[:2000]
    category = core.guess_category(context, chosen, rejected)
    return save_draft_pair(result, context=context, chosen=chosen, rejected=rejected, category=category,
                           note=note, user=user)
