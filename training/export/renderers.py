"""Rendering one pinned item into its cache entry (pure; no Django): rows in TRL's conversational
columns for ``sft`` (through the render core), ``dpo`` (a pair -> prompt / chosen / rejected) and
``prompt`` (one row per decision point, with the gold reference evaluation scores against).

What a reference is belongs to evaluation, which comes after training: it registers its builder
here (``register_reference_builder``, from ``evaluation.apps``), so training imports nothing of it.
"""

from __future__ import annotations

import json
from typing import Callable, Protocol

from annotate.pairs import Pair, audit_rendered_pair
from annotate.trajectory import CASE_TYPES, Trajectory, truncate_before
from training.export.report import item_finding, storage_findings
from training.export.settings import RenderContext, SettingsError
from training.export.writers import arrow_batch, item_columns, json_columns, jsonl_text
from training.render import Renderer, to_conversation
from training.split import render_sample


class DecisionReference(Protocol):
    """What a ``prompt`` row needs of a decision point's gold reference (evaluation's ``Reference``)."""

    item_id: str  # "<external id>#t<turn>s<step>"; the row's id is written back
    case_types: list[str]

    def to_dict(self) -> dict: ...


ReferenceBuilder = Callable[[Trajectory], "list[DecisionReference]"]
_reference_builders: list[ReferenceBuilder] = []


def register_reference_builder(fn: ReferenceBuilder) -> ReferenceBuilder:
    """Let ``prompt`` snapshots find the gold references of a trajectory's decision points (one builder)."""
    _reference_builders[:] = [fn]
    return fn


def require_reference_builder() -> None:
    """Refuse a ``prompt`` export up front when no reference builder is registered."""
    if not _reference_builders:
        raise SettingsError("prompt snapshots need the evaluation app: no reference builder is registered", "kind")


def references_of(traj: Trajectory) -> list[DecisionReference]:
    """The gold references of ``traj``'s decision points, from the registered builder."""
    require_reference_builder()
    return _reference_builders[0](traj)


# --- rendering one item --------------------------------------------------------------------------

def render_item(document: dict, ident: str, ctx: RenderContext) -> dict:
    """One pinned item -> its cache entry: ``{"result", "jsonl", "arrow"}``.

    ``result`` (JSON) is what the audit needs: the core's ``render_sample`` result for ``sft``
    items without the rows, per-sample text and regions; this module's own findings (storage
    included); case types; row count and token counts. ``jsonl`` is the item's lines exactly as
    the JSONL files hold them, and ``arrow`` its rows as one serialised Arrow record batch, so a
    re-export from the cache concatenates bytes instead of encoding rows again.
    ``document`` is a canonical trajectory (``sft``, ``prompt``) or a pair document (``dpo``);
    one that cannot be rendered yields no rows and a ``render_failed`` error naming the reason.
    """
    kind = ctx.settings.kind
    try:
        if kind == "sft":
            out = _render_sft(document, ident, ctx)
        elif kind == "prompt":
            out = _render_prompt(document, ident, ctx)
        else:
            out = _render_dpo(document, ident, ctx)
    except Exception as e:  # a template's raise_exception, a malformed document: reported per item
        out = {"rows": [], "render": None, "findings": [
            item_finding("render_failed", f"{type(e).__name__}: {e}", "error", ident)]}
    rows = out.pop("rows")
    cols = item_columns(ctx.settings, rows)
    out["findings"] += storage_findings(rows, json_columns(cols))
    out.update(item=ident, case_types=_case_types(document, kind), n_rows=len(rows), columns=cols if rows else None,
               tokens=[r["_tokens"] for r in rows if "_tokens" in r])
    return {"result": out, "jsonl": jsonl_text(rows, cols), "arrow": arrow_batch(rows, cols) if rows else b""}


def _case_types(document: dict, kind: str) -> list[str]:
    doc = (document.get("context") if kind == "dpo" else document) or {}
    return sorted(c for c in (doc.get("meta") or {}).get("case_types", []) if c in CASE_TYPES)


# Per-sample fields the files and the audit do not need (the preview page renders afresh).
_HEAVY_SAMPLE_FIELDS = ("text", "regions", "supervised_spans")
_SFT_ROW_FIELDS = ("messages", "prompt", "completion", "tools", "chat_template_kwargs",
                   "input_ids", "labels", "assistant_masks")


def _render_sft(document: dict, ident: str, ctx: RenderContext) -> dict:
    traj = Trajectory.from_dict(document)
    result = render_sample(traj, ctx.template, ctx.tokenizer, ctx.render_settings, trajectory_id=ident)
    rows = []
    for sample in result["samples"]:
        row = {"id": sample["id"]}
        row.update({k: sample[k] for k in _SFT_ROW_FIELDS if k in sample})
        rows.append(row)
    findings = [] if ctx.settings.tokenized else completions_with_tool_results(rows, ident)
    lite = dict(result)
    lite["samples"] = []
    for sample in result["samples"]:
        kept = {k: v for k, v in sample.items() if k not in _HEAVY_SAMPLE_FIELDS and k not in _SFT_ROW_FIELDS}
        # Steps inside assistant messages that a policy keeps out of the loss: TRL cannot see these in
        # conversational rows (it trains whole assistant messages), only in a labels column.
        kept["masked_steps"] = [{"turn": r["turn"], "step": r["step"], "kind": r["kind"], "why": r["masked"]}
                                for r in sample.get("regions", []) if r.get("masked") and r["end"] > r["start"]]
        lite["samples"].append(kept)
    return {"rows": rows, "render": lite, "findings": findings}


def completions_with_tool_results(rows: list[dict], item: str) -> list[dict]:
    """Errors for prompt / completion rows whose completion holds tool results.

    TRL trains every token of a conversational completion (``completion_only_loss``), so a turn
    "call, result, answer" would teach the model to write the tool's result. Our labels leave it
    out; exported tokenized, the rows carry them and TRL uses them.
    """
    out = []
    for row in rows:
        tools = sum(1 for m in row.get("completion") or [] if m.get("role") == "tool")
        if tools:
            out.append(item_finding("completion_holds_tool_results", (
                f"the completion holds {tools} tool result(s), which TRL's completion-only loss would train: "
                "export tokenized (labels column) so only the assistant's tokens are trained"),
                "error", item, sample=row["id"]))
    return out


def _render_prompt(document: dict, ident: str, ctx: RenderContext) -> dict:
    """One row per decision point (after each user message and each block of tool results): the
    context as messages, and the gold continuation as the evaluation reference."""
    traj = Trajectory.from_dict(document)
    tools = to_conversation(traj, ctx.template).tools
    renderer = Renderer.for_tokenizer(ctx.template, ctx.tokenizer)
    rows, findings = [], []
    for ref in references_of(traj):
        ti, si = _decision_point(ref.item_id)
        prompt = to_conversation(truncate_before(traj, ti, si), ctx.template).messages
        text, _ = renderer.render(prompt, tools, add_generation_prompt=True)
        n_tokens = len(ctx.tokenizer(text, add_special_tokens=False)["input_ids"])
        row_id = f"{ident}#t{ti}s{si}"
        if ctx.settings.max_length is not None and n_tokens > ctx.settings.max_length:
            findings.append(item_finding("prompt_too_long", f"the prompt is {n_tokens} tokens, over max_length "
                                                        f"{ctx.settings.max_length}", "error", ident, sample=row_id))
        ref.item_id = row_id
        rows.append({"id": row_id, "prompt": prompt, "tools": tools,
                     "reference": json.dumps(ref.to_dict(), ensure_ascii=False, sort_keys=True),
                     "case_types": list(ref.case_types), "_tokens": n_tokens})
    return {"rows": rows, "render": None, "findings": findings}


def _decision_point(item_id: str) -> tuple[int, int]:
    # evaluation.scoring.reference_at names points "<external id>#t<turn>s<step>".
    tail = item_id.rsplit("#t", 1)[1]
    ti, si = tail.split("s", 1)
    return int(ti), int(si)


def split_pair_messages(context: list[dict], chosen: list[dict], rejected: list[dict]) -> int:
    """How many leading messages are the prompt: those all three share, ending before an assistant
    message. A cut inside an assistant message (after its reasoning, say) cannot be expressed in
    messages; that message then starts both completions.

    >>> u, a, b = {"role": "user", "content": "q"}, {"role": "assistant", "content": "x"}, {"role": "assistant", "content": "y"}
    >>> split_pair_messages([u], [u, a], [u, b])
    1
    """
    n = 0
    limit = min(len(chosen), len(rejected), len(context))
    while n < limit and chosen[n] == rejected[n] == context[n]:
        n += 1
    while n > 0 and chosen[n - 1]["role"] == "assistant":
        n -= 1
    return n


def _render_dpo(document: dict, ident: str, ctx: RenderContext) -> dict:
    """A pair -> TRL's conversational preference row: the shared messages as ``prompt``, each
    side's remaining messages as ``chosen`` / ``rejected`` (earlier tool calls and results kept)."""
    pair = Pair.from_document(document)
    chosen = to_conversation(pair.completed("chosen"), ctx.template)
    rejected = to_conversation(pair.completed("rejected"), ctx.template)
    context = to_conversation(pair.context, ctx.template)
    n = split_pair_messages(context.messages, chosen.messages, rejected.messages)
    prompt = chosen.messages[:n]
    renderer = Renderer.for_tokenizer(ctx.template, ctx.tokenizer)
    prompt_text, _ = renderer.render(prompt, chosen.tools, add_generation_prompt=True)
    chosen_text, _ = renderer.render(chosen.messages, chosen.tools)
    rejected_text, _ = renderer.render(rejected.messages, chosen.tools)
    count = lambda s: len(ctx.tokenizer(s, add_special_tokens=False)["input_ids"])  # noqa: E731
    n_chosen, n_rejected = count(chosen_text), count(rejected_text)
    problems = audit_rendered_pair(prompt_text, chosen_text, rejected_text, tokens_chosen=n_chosen,
                                   tokens_rejected=n_rejected, max_length=ctx.settings.max_length)
    findings = [item_finding(p.code, p.message, p.severity, ident) for p in problems]
    row = {"id": ident, "prompt": prompt, "chosen": chosen.messages[n:], "rejected": rejected.messages[n:],
           "tools": chosen.tools, "_tokens": max(n_chosen, n_rejected)}
    return {"rows": [row], "render": None, "findings": findings,
            "pair": {"category": pair.category, "source": pair.source}}
