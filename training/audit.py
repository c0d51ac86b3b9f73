"""The audit of rendered samples, per sample and for a whole snapshot (pure; JSON-serialisable).

What it checks, and how bad each finding is (errors block an export unless a lead overrides them):

- supervised tokens by role and by step kind (``think``, ``tool_call``, ``answer``);
- **leaks**: system, user or tool text, or tool-schema text, inside a supervised span (error). The
  protected text is found by searching the rendered text for each message's own content, in order,
  independently of how the masks were computed;
- the two mask methods disagreeing (error), or only one available (warning / info);
- tool calls that fail their schema, unknown tools, non-object arguments, on supervised steps
  (error; on masked steps, info), via ``annotate.findings``; calls without results (warning);
- samples cut by ``max_length``: how many supervised tokens are lost (warning), and a sample whose
  supervised tokens are *all* cut (error: TRL would silently drop it);
- canonical steps the template does not render (warning), tokens straddling a span boundary (info);
- case-type coverage over the snapshot (missing types: warning).
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np

from annotate.findings import FINDING_CODES
from annotate.trajectory import CASE_TYPES, CASE_TYPE_NAMES

SEVERITY = {
    "leak": "error",
    "mask_disagreement": "error",
    "markers_unattributed": "error",
    "not_prefix_stable": "error",
    "turn_prompt_mismatch": "error",
    "no_supervised_tokens": "error",
    "all_supervised_truncated": "error",
    "invalid_tool_call": "error",
    "truncated": "warning",
    "call_without_result": "warning",
    "result_without_call": "warning",
    "step_not_rendered": "warning",
    "mask_single_method": "warning",
    "case_type_missing": "warning",
    "trajectory_dropped": "warning",
    "masked_invalid_tool_call": "info",
    "generation_prompt_in_markers": "info",
    "straddling_tokens": "info",
}

# Each finding in plain words, for the snapshot page: (title, what it means for training, what to do).
# The code stays on the page, small, for those who know it.
EXPLAIN = {
    "masks_need_tokenized": (
        "Some steps should stay out of the loss, but plain conversation rows cannot say so",
        "TRL would train on steps you excluded (reasoning, error-labelled or untrained steps).",
        "Snapshot again with \u201cAdd input_ids, labels and assistant_masks\u201d ticked."),
    "completion_holds_tool_results": (
        "Tool results would be trained as if the model wrote them",
        "The model would learn to invent tool results instead of waiting for them.",
        "Snapshot again with \u201cAdd input_ids, labels and assistant_masks\u201d ticked."),
    "leak": (
        "Text the model does not write is in the loss",
        "The model would learn to write system, user or tool text.",
        "Use a *_training template (e.g. qwen3_training), or check the template's generation markers."),
    "mask_disagreement": (
        "The two ways of finding the assistant's tokens disagree",
        "Some tokens may be trained or left out by mistake.",
        "Try the matching *_training template, or the \u201cturn\u201d strategy; preview a trajectory to see where."),
    "markers_unattributed": (
        "The template marks text as generated that matches no assistant message",
        "The loss mask cannot be trusted for these samples.",
        "Use a *_training template, or preview a trajectory to see the stray markers."),
    "not_prefix_stable": (
        "The template rewrites earlier turns as the conversation grows",
        "The history the model sees in training differs from what it sees when it answers.",
        "Use the \u201cturn\u201d strategy (one sample per user turn), or a *_training template."),
    "turn_prompt_mismatch": (
        "A turn renders differently in training than at inference",
        "The model would be trained on a prompt it will never be given.",
        "Use the \u201cturn\u201d strategy, or a *_training template."),
    "no_supervised_tokens": (
        "A sample has nothing to learn from",
        "TRL would skip it or train on nothing.",
        "Check that the trajectory has assistant steps marked for training."),
    "all_supervised_truncated": (
        "Everything to learn lies beyond the max length",
        "TRL would silently drop the sample.",
        "Raise \u201cMax length\u201d, or use the \u201cturn\u201d strategy to make shorter samples."),
    "invalid_tool_call": (
        "A trained tool call does not match its tool's schema",
        "The model would learn to make calls that fail.",
        "Fix the call in the editor, or mark the step out of training."),
    "render_failed": (
        "An item could not be rendered",
        "It is left out of the snapshot.",
        "Read the message below; preview the trajectory to see the error."),
    "json_float_rounding": (
        "A number would be changed when the dataset is stored",
        "TRL would train on the rounded text.",
        "Write the number with fewer digits in the trajectory."),
    "prompt_too_long": (
        "A prompt is longer than the max length",
        "There is no room left for the answer.",
        "Raise \u201cMax length\u201d, or shorten the context."),
    "identical_sides": (
        "Chosen and rejected read the same",
        "DPO learns nothing from this pair.",
        "Edit one side of the pair so they differ."),
    "truncated": (
        "Some samples are cut by the max length",
        "The cut part is not trained.",
        "Raise \u201cMax length\u201d if the cut part matters."),
    "call_without_result": (
        "A tool call has no result",
        "The model sees a call that was never answered.",
        "Add the result in the editor, if the tool was called."),
    "result_without_call": (
        "A tool result has no call",
        "The model sees a result out of nowhere.",
        "Add the call, or remove the stray result."),
    "step_not_rendered": (
        "The chat template leaves a step out",
        "That step is not trained and not seen as context.",
        "Use a template that renders every step (the *_training ones keep reasoning)."),
    "mask_single_method": (
        "The assistant's tokens could be checked only one way",
        "The mask is probably right but was not cross-checked.",
        "Nothing needed; a *_training template allows the cross-check."),
    "case_type_missing": (
        "A kind of case has no example",
        "The model will not learn that kind of case.",
        "Annotate and approve a trajectory of that case type, if it matters."),
    "trajectory_dropped": (
        "A trajectory was left out",
        "It is not in the training data.",
        "See the message below (usually an error label with the \u201cdrop\u201d policy)."),
    "masked_invalid_tool_call": (
        "An invalid tool call is kept as context only",
        "It is not trained, so the model does not learn it.",
        "Nothing needed."),
    "generation_prompt_in_markers": (
        "The template's answer cue is inside its generation markers",
        "A few template tokens are trained; harmless.",
        "Nothing needed."),
    "straddling_tokens": (
        "A few tokens straddle a boundary between steps",
        "They are attributed to one side; harmless.",
        "Nothing needed."),
}


def explain(code: str) -> dict:
    """A finding in plain words: ``{"title", "means", "todo"}`` (the code itself where unknown).

    >>> explain("masks_need_tokenized")["todo"].startswith("Snapshot again")
    True
    """
    title, means, todo = EXPLAIN.get(code, (code.replace("_", " ").capitalize(), "", ""))
    return {"title": title, "means": means, "todo": todo}


_INVALID_CALL_CODES = {code for code, sev in FINDING_CODES.items() if sev == "error"}
MAX_EXAMPLES = 50  # findings kept verbatim in an aggregate report (all are counted)


def finding(code: str, message: str, **where) -> dict:
    """One audit finding: ``{"code", "severity", "message", ...where}``."""
    return {"code": code, "severity": SEVERITY.get(code, "error"), "message": message,
            **{k: v for k, v in where.items() if v is not None}}


# --- leaks ---------------------------------------------------------------------------------------

def protected_regions(text: str, messages: list[dict], tools: list[dict]) -> list[dict]:
    """Where system, user and tool text, and tool descriptions, sit in ``text``.

    Messages are searched in order, each from where the previous one was found, so a short user
    message ("yes") is found at its own place and not inside an earlier assistant reply. Assistant
    messages are searched too (to move past them) but are not protected.
    """
    out = []
    cursor = 0
    for i, m in enumerate(messages):
        for needle in _needles(m):
            p = text.find(needle, cursor)
            if p >= 0:
                if m["role"] != "assistant":
                    out.append({"role": m["role"], "message": i, "start": p, "end": p + len(needle)})
                cursor = p + len(needle)
                break
    for t in tools or []:
        desc = (t.get("function") or t).get("description") or ""
        if len(desc) >= 16:
            start = text.find(desc)
            while start >= 0:
                out.append({"role": "schema", "message": None, "start": start, "end": start + len(desc)})
                start = text.find(desc, start + 1)
    return out


def _needles(m: dict) -> list[str]:
    if m["role"] == "assistant":
        content = (m.get("content") or "").strip()
        if content:
            return [content]
        calls = m.get("tool_calls") or []
        return [calls[-1]["function"]["name"]] if calls else []
    content = m.get("content")
    if not isinstance(content, str) or not content.strip():
        return []
    # Some templates JSON-encode tool results (gpt-oss, Llama 3.x).
    return list(dict.fromkeys([content.strip(), json.dumps(content, ensure_ascii=False)[1:-1].strip()]))


def find_leaks(text: str, spans: list[tuple[int, int]], protected: list[dict]) -> list[dict]:
    """Findings for supervised characters inside protected text."""
    out = []
    for r in protected:
        hit = [(max(s, r["start"]), min(e, r["end"])) for s, e in spans if min(e, r["end"]) > max(s, r["start"])]
        if hit:
            chars = sum(e - s for s, e in hit)
            what = "tool-schema" if r["role"] == "schema" else f"{r['role']} message"
            out.append(finding("leak", f"{chars} characters of {what} text are supervised: "
                                       f"{text[hit[0][0]:hit[0][1]][:60]!r}", role=r["role"], message_index=r["message"]))
    return out


# --- per sample ------------------------------------------------------------------------------------

def count_by_region(labels_mask: list[int], offsets: list[tuple[int, int]], regions: list[dict]) -> dict:
    """Supervised tokens by step kind, attributing each token to the region holding its first character."""
    if not labels_mask:
        return {}
    mask = np.asarray(labels_mask, dtype=bool)
    starts = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)[:, 0][mask]
    regs = sorted((r for r in regions if r["end"] > r["start"]), key=lambda r: r["start"])
    if not regs:
        return {"template": int(mask.sum())} if mask.any() else {}
    rs = np.asarray([r["start"] for r in regs], dtype=np.int64)
    re_ = np.asarray([r["end"] for r in regs], dtype=np.int64)
    k = np.searchsorted(rs, starts, side="right") - 1
    ok = (k >= 0) & (starts < re_[np.maximum(k, 0)])
    out: Counter = Counter()
    for idx in k[ok]:
        out[regs[idx]["kind"]] += 1
    if (~ok).any():
        out["template"] += int((~ok).sum())  # e.g. the cue of a generation prompt inside markers
    return dict(sorted(out.items()))


def truncation_findings(mask: list[int], max_length: int | None) -> tuple[list[dict], dict | None]:
    """What keeping the first ``max_length`` tokens costs, as findings plus a summary."""
    if max_length is None or len(mask) <= max_length:
        return [], None
    total = sum(mask)
    lost = total - sum(mask[:max_length])
    summary = {"tokens": len(mask), "max_length": max_length, "tokens_cut": len(mask) - max_length,
               "supervised_cut": lost, "supervised_total": total}
    if total and lost == total:
        return [finding("all_supervised_truncated",
                        f"all {total} supervised tokens lie beyond max_length={max_length} "
                        f"(the sample has {len(mask)} tokens): it would train on nothing")], summary
    return [finding("truncated", f"{len(mask) - max_length} tokens cut by max_length={max_length}, "
                                 f"{lost} of {total} supervised")], summary


def validation_findings(validation: list, supervised_steps: set[tuple[int, int]],
                        sample_steps: set[tuple[int, int]]) -> list[dict]:
    """``annotate.findings`` results that concern the steps of one sample."""
    out = []
    for f in validation:
        key = (f.turn, f.step)
        if key not in sample_steps:
            continue
        if f.code in _INVALID_CALL_CODES:
            code = "invalid_tool_call" if key in supervised_steps else "masked_invalid_tool_call"
            out.append(finding(code, f"{f.code}: {f.message}", turn=f.turn, step=f.step, field=f.field or None))
        elif f.code in ("call_without_result", "result_without_call"):
            out.append(finding(f.code, f.message, turn=f.turn, step=f.step))
    return out


# --- aggregate ---------------------------------------------------------------------------------------

def aggregate(results: list[dict]) -> dict:
    """Combine ``render_sample`` results (one per trajectory) into a snapshot audit.

    ``errors`` > 0 means the export is blocked unless a lead overrides it.
    """
    codes: Counter = Counter()
    by_kind: Counter = Counter()
    by_role: Counter = Counter()
    examples: list[dict] = []
    coverage: Counter = Counter()
    costs: Counter = Counter()
    strategies: Counter = Counter()
    totals = Counter()
    for r in results:
        totals["trajectories"] += 1
        for ct in r.get("case_types", []):
            coverage[ct] += 1
        if r.get("dropped"):
            totals["dropped"] += 1
            codes["trajectory_dropped"] += 1
            _keep(examples, finding("trajectory_dropped", r["dropped"], trajectory=r.get("trajectory")))
        strategies[r["strategy"]["chosen"]] += 1
        for k, v in (r["strategy"].get("tokens") or {}).items():
            costs[k] += v
        for s in r.get("samples", []):
            a = s["audit"]
            totals["samples"] += 1
            totals["tokens"] += a["tokens"]
            totals["supervised_tokens"] += a["supervised_tokens"]
            if a.get("truncated"):
                totals["truncated_samples"] += 1
                totals["supervised_tokens_cut"] += a["truncated"]["supervised_cut"]
            by_kind.update(a["by_kind"])
            by_role.update(a["by_role"])
            for f in a["findings"]:
                codes[f["code"]] += 1
                _keep(examples, {**f, "sample": s["id"]})
    missing = [c for c in CASE_TYPES if not coverage.get(c)]
    for c in missing:
        codes["case_type_missing"] += 1
        _keep(examples, finding("case_type_missing", f"no trajectory of case type {CASE_TYPE_NAMES[c]!r}",
                                case_type=c))
    severity_counts = Counter()
    for code, n in codes.items():
        severity_counts[SEVERITY.get(code, "error")] += n
    return {
        "totals": dict(sorted(totals.items())),
        "supervised_by_role": dict(sorted(by_role.items())),
        "supervised_by_kind": dict(sorted(by_kind.items())),
        "strategies": dict(sorted(strategies.items())),
        "strategy_tokens": dict(sorted(costs.items())),
        "case_type_coverage": {c: coverage.get(c, 0) for c in CASE_TYPES},
        "findings": dict(sorted(codes.items())),
        "errors": severity_counts["error"],
        "warnings": severity_counts["warning"],
        "blocking": severity_counts["error"] > 0,
        "examples": examples,
    }


def _keep(examples: list, f: dict) -> None:
    if len(examples) < MAX_EXAMPLES:
        examples.append(f)
