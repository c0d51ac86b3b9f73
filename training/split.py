"""Split strategies and the sample pipeline (pure).

- ``conversation``: one sample per trajectory, every assistant turn supervised. Right when the
  template renders a conversation's history exactly as it renders each turn at inference
  (prefix-stable) and keeps earlier turns' reasoning.
- ``turn``: one sample per user turn: the history rendered exactly as the template renders it at
  inference (``add_generation_prompt=True``), then the newest turn, which alone is supervised.
  Exported as TRL's conversational prompt-completion (``prompt`` / ``completion``).
- ``auto``: probes the template once (a two-turn tool-calling conversation with reasoning): if
  the rendering is not prefix-stable or earlier turns' reasoning disappears, ``turn``; else
  ``conversation``. Decided per template, so a dataset has one shape.

The token cost of both choices is reported per trajectory (``strategy.tokens``).

``SamplePipeline`` runs the whole path for one trajectory: error policy -> model messages ->
samples -> full render with markers -> prefix-diff -> cross-check -> step policies -> tokens ->
audit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from annotate.findings import validate
from annotate.trajectory import Step, Trajectory, Turn, normalize_tool
from training import audit as audit_mod
from training.chat_templates import ChatTemplate
from training.masks import (PrefixRenders, SegmentTokenizer, attribute_markers, clip_spans, cross_check,
                            diff_spans, merge_spans, span_chars, step_regions, subtract_spans, token_labels)
from training.render import (NOT_MODEL_ERRORS, Conversation, Renderer, RenderSettings, settings_key,
                             to_conversation)


# --- template behaviour ------------------------------------------------------------------------

@dataclass(frozen=True)
class TemplateBehaviour:
    """What the probe found about a template."""

    prefix_stable: bool
    drops_history_reasoning: bool
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"prefix_stable": self.prefix_stable, "drops_history_reasoning": self.drops_history_reasoning,
                "notes": list(self.notes)}


_PROBE_REASONING = ("probe reasoning one", "probe reasoning two", "probe reasoning three")


def probe_trajectory() -> Trajectory:
    """Two turns; the first with reasoning, a tool call, its result and an answer."""
    r1, r2, r3 = _PROBE_REASONING
    return Trajectory.from_dict({
        "system": "probe system",
        "tools": [{"name": "probe_tool", "description": "A probe.", "parameters": {
            "type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}],
        "turns": [
            {"user": "probe question one", "steps": [
                {"kind": "think", "text": r1},
                {"kind": "tool_call", "name": "probe_tool", "arguments": {"q": "x"}, "call_id": "call_1"},
                {"kind": "tool_result", "name": "probe_tool", "call_id": "call_1", "text": "probe result"},
                {"kind": "think", "text": r2},
                {"kind": "answer", "text": "probe answer one"}]},
            {"user": "probe question two", "steps": [
                {"kind": "think", "text": r3},
                {"kind": "answer", "text": "probe answer two"}]},
        ]})


def template_behaviour(renderer: Renderer) -> TemplateBehaviour:
    """Probe ``renderer``'s template: prefix-stable? does it drop earlier turns' reasoning?"""
    key = (renderer.template.sha, tuple(sorted((k, str(v)) for k, v in renderer.variables.items())))
    if key not in _BEHAVIOUR:
        _BEHAVIOUR[key] = _probe(renderer)
    return _BEHAVIOUR[key]


_BEHAVIOUR: dict = {}


def _probe(renderer: Renderer) -> TemplateBehaviour:
    conv = to_conversation(probe_trajectory(), renderer.template)
    notes = []
    try:
        full = renderer.render(conv.messages, conv.tools)[0]
    except Exception as e:  # a template that cannot render tools: still decide, on what it can
        return TemplateBehaviour(False, False, (f"the template fails on a tool-calling conversation: {e}",))
    assistant = [i for i, m in enumerate(conv.messages) if m["role"] == "assistant"]
    diff = diff_spans(PrefixRenders(renderer, conv.messages, conv.tools), full, assistant)
    stable = not diff.unstable
    for u in diff.unstable:
        notes.append(f"message {u['message']} ({conv.messages[u['message']]['role']}): {u['why']}")
    drops = False
    if renderer.template.reasoning_field is not None:
        missing = [r for r in _PROBE_REASONING[:2] if r not in full]
        if missing:
            drops = True
            notes.append(f"earlier reasoning not rendered in the full conversation: {missing}")
    return TemplateBehaviour(stable, drops, tuple(notes))


def choose_strategy(requested: str, behaviour: TemplateBehaviour) -> tuple[str, str]:
    """``(strategy, reason)`` for a requested strategy and the template's behaviour."""
    if requested != "auto":
        return requested, "requested"
    if not behaviour.prefix_stable:
        return "turn", "auto: the template is not prefix-stable (history renders differently at inference)"
    if behaviour.drops_history_reasoning:
        return "turn", "auto: the template drops earlier turns' reasoning at inference"
    return "conversation", "auto: the template is prefix-stable and keeps earlier reasoning"


# --- error policies ------------------------------------------------------------------------------

def is_erroneous(step: Step) -> bool:
    return any(label not in NOT_MODEL_ERRORS for label in step.labels)


def apply_error_policy(traj: Trajectory, policy: str) -> tuple[Trajectory | None, str | None]:
    """``(trajectory, None)`` to render, or ``(None, reason)`` when the policy drops it.

    ``drop``: any erroneous step drops the trajectory. ``truncate``: cut before the first one (the
    earlier turns, and the steps before it in its turn, remain). ``mask``: unchanged here (masked later).
    """
    first = next(((ti, si) for ti, si, s in traj.steps() if is_erroneous(s)), None)
    if first is None or policy == "mask":
        return traj, None
    ti, si = first
    where = f"turn {ti + 1}, step {si + 1}"
    if policy == "drop":
        return None, f"error policy 'drop': a step has error labels ({where})"
    turns = list(traj.turns[:ti])
    if si > 0:
        turns.append(Turn(user=traj.turns[ti].user, steps=list(traj.turns[ti].steps[:si])))
    if not any(s.kind != "tool_result" for t in turns for s in t.steps):
        return None, f"error policy 'truncate': nothing to train on before the first erroneous step ({where})"
    return Trajectory(system=traj.system, tools=traj.tools, turns=turns, meta=traj.meta), None


def step_is_masked(step: Step, settings: RenderSettings) -> str | None:
    """Why a rendered step is out of the loss (or None)."""
    if not step.train:
        return "train flag off"
    if step.kind == "think" and not settings.reasoning_loss:
        return "reasoning not in the loss"
    if settings.error_policy == "mask" and is_erroneous(step):
        return "error labels (policy 'mask')"
    return None


# --- samples -----------------------------------------------------------------------------------

@dataclass
class SampleCut:
    """Which messages a sample holds and which of them are supervised."""

    end: int  # messages[:end]
    supervised: list[int]
    prompt_end: int | None = None  # turn samples: messages[:prompt_end] is the prompt
    turn: int | None = None


def cut_samples(conv: Conversation, strategy: str) -> list[SampleCut]:
    """The samples of one conversation under ``strategy`` ("conversation" or "turn")."""
    assistant = [i for i, m in enumerate(conv.messages) if m["role"] == "assistant"]
    if strategy == "conversation":
        return [SampleCut(end=len(conv.messages), supervised=assistant)] if assistant else []
    cuts = []
    for turn, first, end in conv.turn_ranges():
        sup = [i for i in assistant if first < i < end]
        if sup:
            cuts.append(SampleCut(end=end, supervised=sup, prompt_end=first + 1, turn=turn))
    return cuts


class SamplePipeline:
    """Renders trajectories for one (template, tokenizer, settings); reuse it across trajectories."""

    def __init__(self, template: ChatTemplate, tokenizer, settings: RenderSettings):
        self.template, self.tokenizer, self.settings = template, tokenizer, settings
        self.renderer = Renderer.for_tokenizer(template, tokenizer, settings.kwargs)
        self.segments = SegmentTokenizer(tokenizer) if tokenizer is not None else None
        self.behaviour = template_behaviour(self.renderer)
        self.strategy, self.strategy_reason = choose_strategy(settings.strategy, self.behaviour)
        self.key = settings_key(template, tokenizer, settings)

    def render(self, traj: Trajectory, trajectory_id=None) -> dict:
        """Samples, strategy report and audit for one trajectory (see ``render_sample``)."""
        self.renderer.reset()
        result = {"trajectory": trajectory_id, "settings_key": self.key, "case_types": list(traj.meta.case_types),
                  "strategy": {"chosen": self.strategy, "reason": self.strategy_reason}, "dropped": None,
                  "samples": []}
        traj = _flat_tools(traj)
        kept, dropped = apply_error_policy(traj, self.settings.error_policy)
        if kept is None:
            result["dropped"] = dropped
            return result
        self._traj = kept  # step lookups while building this result
        conv = to_conversation(kept, self.template)
        validation = validate(kept)
        prefixes = PrefixRenders(self.renderer, conv.messages, conv.tools)
        for k, cut in enumerate(cut_samples(conv, self.strategy)):
            result["samples"].append(self._sample(kept, conv, prefixes, cut, validation, trajectory_id, k))
        result["strategy"]["tokens"] = self._strategy_costs(conv, prefixes, result["samples"])
        return result

    # -- one sample --
    def _sample(self, traj, conv, prefixes, cut, validation, trajectory_id, k) -> dict:
        text, blocks = prefixes.get(cut.end, markers=True)
        messages = conv.messages[:cut.end]
        check, markers, findings = self._masks(text, blocks, prefixes, cut, messages)
        prompt_len = self._prompt_len(text, prefixes, cut, findings)
        regions, spans = self._regions(text, conv, cut, check.spans, prompt_len)
        findings += self._step_findings(conv, cut, regions, validation)
        findings += self._leaks(text, messages, conv.tools, spans, blocks if markers is not None else [],
                                prompt_len)
        sample = self._sample_record(conv, cut, trajectory_id, k, text, spans, regions)
        sample["audit"] = self._token_audit(sample, text, spans, regions, findings, check)
        return sample

    def _masks(self, text, blocks, prefixes, cut, messages):
        """Both methods, cross-checked: ``(CrossCheck, markers or None, findings)``."""
        assistant = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        findings: list[dict] = []
        diff = diff_spans(prefixes, text, assistant)
        markers = None
        if self.renderer.markers_text is not None:
            markers, stray = attribute_markers(blocks, assistant, diff)
            if stray:
                findings.append(audit_mod.finding(
                    "markers_unattributed", f"{len(stray)} generation blocks cannot be matched to assistant messages"))
        for u in diff.unstable:
            if u["message"] in cut.supervised:
                # In a whole-conversation sample this means the history is not rendered as at
                # inference: an error. Inside the newest turn of a per-turn sample it is how the
                # template re-renders a message once its turn continues (Qwen3's empty think block):
                # the markers still place it, only the cross-check is missing.
                within_turn = cut.prompt_end is not None and markers is not None
                code = "mask_single_method" if within_turn else "not_prefix_stable"
                findings.append(audit_mod.finding(code, f"prefix-diffing cannot place message {u['message']}: "
                                                        f"{u['why']}", message_index=u["message"]))
        check = cross_check(text, cut.supervised, markers, diff)
        if check.method == "diff" and markers is None:
            findings.append(audit_mod.finding("mask_single_method", "the template has no generation markers: "
                                                                    "masks come from prefix-diffing alone"))
        for d in check.disagreements:
            findings.append(audit_mod.finding("mask_disagreement", f"markers and prefix-diffing disagree on "
                                                                   f"message {d['message']}: {d['text']!r}",
                                              message_index=d["message"]))
        if check.prompt_in_markers:
            n = sum(p["chars"] for p in check.prompt_in_markers)
            findings.append(audit_mod.finding("generation_prompt_in_markers",
                                              f"the template's markers also cover {n} characters of generation "
                                              f"prompt (trained, as TRL does)"))
        return check, markers, findings

    def _prompt_len(self, text, prefixes, cut, findings) -> int:
        """Turn samples: the length of the prompt (history + generation prompt), never supervised."""
        if cut.prompt_end is None:
            return 0
        prompt = prefixes.get(cut.prompt_end, True)[0]
        if text.startswith(prompt):
            return len(prompt)
        findings.append(audit_mod.finding("turn_prompt_mismatch",
                                          "the sample does not start with the history as rendered at inference"))
        return 0

    def _step_findings(self, conv, cut, regions, validation) -> list[dict]:
        sample_steps = {(conv.origins[i]["turn"], s) for i in range(cut.end) for s in conv.origins[i]["steps"]}
        supervised_steps = {(r["turn"], r["step"]) for r in regions if r["supervised"]}
        out = audit_mod.validation_findings(validation, supervised_steps, sample_steps)
        out += [audit_mod.finding("step_not_rendered", f"{r['kind']} step not rendered by the template",
                                  turn=r["turn"], step=r["step"]) for r in regions if not r["rendered"]]
        out += [audit_mod.finding("step_not_rendered", f"{n['kind']} step not rendered: {n['why']}",
                                  turn=n["turn"], step=n["step"])
                for n in conv.not_rendered if (n["turn"], n["step"]) in sample_steps or cut.turn is None]
        return out

    def _leaks(self, text, messages, tools, spans, blocks, prompt_len) -> list[dict]:
        """Leaks in what is trained on, and in what the template's markers claim (what TRL would
        train on): a template that marks a user message is caught even though the cross-check keeps
        that text out of the labels."""
        protected = audit_mod.protected_regions(text, messages, tools)
        out = audit_mod.find_leaks(text, spans, protected)
        marked = clip_spans([b for b in blocks if b[1] > b[0]], prompt_len, len(text))
        out += [{**f, "message": "the template's generation markers claim it: " + f["message"]}
                for f in audit_mod.find_leaks(text, subtract_spans(marked, spans), protected)]
        return out

    def _regions(self, text, conv, cut, spans_by_msg, prompt_len):
        """Step regions of the supervised messages, and the spans left after the step policies."""
        regions: list[dict] = []
        masked: list[tuple[int, int]] = []
        all_spans: list[tuple[int, int]] = []
        for i in cut.supervised:
            spans = clip_spans(spans_by_msg.get(i, []), prompt_len, len(text))
            if not spans:
                continue
            hull = (min(s for s, _ in spans), max(e for _, e in spans))
            origin = conv.origins[i]
            steps = [(si, self._step(origin["turn"], si)) for si in origin["steps"]]
            for r in step_regions(text, hull, conv.messages[i], steps):
                why = step_is_masked(self._step(origin["turn"], r["step"]), self.settings)
                regions.append({"message": i, "turn": origin["turn"], **r, "supervised": why is None,
                                **({"masked": why} if why else {})})
                if why:
                    masked.append((r["start"], r["end"]))
            all_spans += spans
        return regions, subtract_spans(all_spans, masked)

    def _step(self, ti, si) -> Step:
        return self._traj.turns[ti].steps[si]

    def _sample_record(self, conv, cut, trajectory_id, k, text, spans, regions) -> dict:
        messages = [dict(m) for m in conv.messages[:cut.end]]
        rec = {"id": f"{trajectory_id}:{k}" if trajectory_id is not None else str(k),
               "trajectory": trajectory_id, "index": k,
               "strategy": "turn" if cut.prompt_end is not None else "conversation", "turn": cut.turn}
        if cut.prompt_end is None:
            rec["messages"] = messages
        else:
            rec["prompt"], rec["completion"] = messages[:cut.prompt_end], messages[cut.prompt_end:]
        rec["tools"] = conv.tools
        if self.settings.template_kwargs:
            rec["chat_template_kwargs"] = self.settings.kwargs
        rec["text"] = text
        rec["supervised_spans"] = [[s, e] for s, e in spans]
        rec["regions"] = regions
        return rec

    def _token_audit(self, sample, text, spans, regions, findings, check) -> dict:
        audit = {"mask_method": check.method, "supervised_chars": span_chars(spans), "tokens": 0,
                 "supervised_tokens": 0, "by_role": {}, "by_kind": {}, "truncated": None, "straddling": []}
        if self.segments is not None:
            tl = token_labels(self.segments, text, spans)
            self._last_offsets = tl.offsets
            n_sup = sum(tl.assistant_masks)
            audit.update(tokens=len(tl.input_ids), supervised_tokens=n_sup,
                         by_role={"assistant": n_sup} if n_sup else {},
                         by_kind=audit_mod.count_by_region(tl.assistant_masks, tl.offsets, regions))
            if tl.straddling:
                audit["straddling"] = [{"token": t, "text": text[int(tl.offsets[t][0]):int(tl.offsets[t][1])]}
                                       for t in tl.straddling[:20]]
                findings.append(audit_mod.finding("straddling_tokens", f"{len(tl.straddling)} tokens cross a "
                                                                       "supervised-span boundary (supervised)"))
            trunc, summary = audit_mod.truncation_findings(tl.assistant_masks, self.settings.max_length)
            findings += trunc
            audit["truncated"] = summary
            if n_sup == 0:
                findings.append(audit_mod.finding("no_supervised_tokens", "nothing in this sample is supervised"))
            if self.settings.tokenized:
                keep = slice(0, self.settings.max_length)
                sample["input_ids"] = tl.input_ids[keep]
                sample["labels"] = tl.labels[keep]
                sample["assistant_masks"] = tl.assistant_masks[keep]
        elif not spans:
            findings.append(audit_mod.finding("no_supervised_tokens", "nothing in this sample is supervised"))
        audit["findings"] = findings
        audit["errors"] = sum(f["severity"] == "error" for f in findings)
        sample["num_tokens"], sample["num_supervised_tokens"] = audit["tokens"], audit["supervised_tokens"]
        return audit

    def _strategy_costs(self, conv, prefixes, samples) -> dict:
        """Tokens of the conversation strategy and of the turn strategy for this trajectory."""
        if not samples or self.segments is None:
            return {}
        if self.strategy == "turn":
            full_text = prefixes.get(len(conv.messages))[0]
            return {"conversation": int(len(self.segments.encode(full_text)[0])),
                    "turn": sum(s["num_tokens"] for s in samples)}
        # One conversation sample: a turn sample k would be (about) the text up to the end of turn k.
        ends = self._last_offsets[:, 1]
        turn_tokens = 0
        for turn, first, end in conv.turn_ranges():
            if any(conv.messages[i]["role"] == "assistant" for i in range(first, end)):
                turn_tokens += int(np.searchsorted(ends, len(prefixes.get(end)[0]), side="right"))
        return {"conversation": samples[0]["num_tokens"], "turn": turn_tokens}

    def __call__(self, traj: Trajectory, trajectory_id=None) -> dict:
        return self.render(traj, trajectory_id)


def _flat_tools(traj: Trajectory) -> Trajectory:
    """The trajectory with its tools in the canonical flat form (importers may leave OpenAI's nesting)."""
    if all("name" in t for t in traj.tools):
        return traj
    return Trajectory(system=traj.system, tools=[normalize_tool(t) for t in traj.tools], turns=traj.turns,
                      meta=traj.meta)


def pipeline_for(template: ChatTemplate, tokenizer, settings: RenderSettings) -> SamplePipeline:
    """A cached pipeline for (template, tokenizer, settings)."""
    key = (template.sha, id(tokenizer), settings)
    p = _PIPELINES.get(key)
    if p is None or p.tokenizer is not tokenizer:
        if len(_PIPELINES) > 16:
            _PIPELINES.clear()
        p = _PIPELINES[key] = SamplePipeline(template, tokenizer, settings)
    return p


_PIPELINES: dict = {}


# --- the entry point -----------------------------------------------------------------------------

def render_sample(traj: Trajectory, template: ChatTemplate, tokenizer, settings: RenderSettings | None = None,
                  trajectory_id: str | int | None = None) -> dict:
    """Render one trajectory into training samples, with masks, optional tokens and its audit.

    Returns a JSON-serialisable dict: ``{"samples": [...], "strategy": {...}, "dropped": reason|None,
    "audit": {...}, "settings_key": ...}``. Deterministic: the same inputs give the same output.
    See :class:`SamplePipeline` for the steps.
    """
    return pipeline_for(template, tokenizer, settings or RenderSettings()).render(traj, trajectory_id)
