"""Export a snapshot: render every pinned item through the core, then write the files (pure; no Django).

``run_export`` takes the pinned items (cache key, id, split), a render cache and a loader for the
documents the cache does not hold. Each item renders once per settings hash into a cache entry
(``render_item``: what the audit needs, plus the item's JSONL lines and Arrow rows already
serialised), so re-exporting after a few edits renders only the edited items and concatenates the
rest. It writes into ``out_dir``:

    train.jsonl, eval.jsonl (test.jsonl)   one record a line, TRL's conversational columns
    parquet/<split>.parquet                the same rows (the Arrow table the dataset holds)
    hf/                                    datasets.DatasetDict.save_to_disk, loadable with load_from_disk
    snapshot.json                          kind, content hash, settings (template, tokenizer, max_length, ...)
    audit.json                             the audit (see ``training.audit``), with storage checks added
    chat_template.jinja                    the template the rows were rendered and masked with
    README.md                              a dataset card with the audit's statistics

Columns by kind: ``sft``: ``id``, ``messages``, ``tools`` (+ ``input_ids``, ``labels``,
``assistant_masks`` when tokenized); ``dpo``: ``id``, ``prompt``, ``chosen``, ``rejected``,
``tools``; ``prompt``: ``id``, ``prompt``, ``tools``, ``reference`` (the gold continuation, as
``evaluation.scoring.Reference.to_dict()`` JSON text), ``case_types``.

Messages and tool schemas are stored as ``datasets.Json()`` values (one JSON text per message /
tool), never as Arrow structs: a struct column gives every row the union of all rows' keys, so a
tool call's arguments would gain ``null`` keys and render differently. Deterministic: the same
items and settings give byte-identical files (no timestamps, stable key order, fixed Parquet
options). Heavy libraries (transformers, datasets, pyarrow) load inside the functions that need them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import Counter
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

from core.errors import InputError
from annotate.trajectory import CASE_TYPES, CASE_TYPE_NAMES, Trajectory, truncate_before

KINDS = ("sft", "dpo", "prompt")
STRATEGIES = ("auto", "conversation", "turn")
ERROR_POLICIES = ("drop", "truncate", "mask")
DEFAULT_MAX_LENGTH = 8192
# Bump when this module's output for the same rendered samples changes (file layout, columns).
EXPORT_VERSION = 1
SPLIT_ORDER = ("train", "eval", "test")

# Files a tokenizer folder holds that change how text becomes tokens.
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                    "vocab.json", "merges.txt", "tokenizer.model", "chat_template.jinja", "chat_template.json")


class SettingsError(InputError):
    """Render settings that cannot be used; ``field`` names the setting."""


# --- settings ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExportSettings:
    """A snapshot's render settings: what ``snapshot.json`` records and the content hash covers.

    ``template`` is a registry name (``qwen3``, ``llama3_1_training`` ...), a model folder, or a
    ``.jinja`` file; ``tokenizer`` a local tokenizer folder.
    """

    kind: str = "sft"
    template: str = "qwen3"
    tokenizer: str = ""
    strategy: str = "auto"
    reasoning_loss: bool = True
    error_policy: str = "mask"
    max_length: int | None = DEFAULT_MAX_LENGTH
    tokenized: bool = False

    @classmethod
    def from_dict(cls, d: dict) -> "ExportSettings":
        d = dict(d)
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise SettingsError(f"unknown setting {unknown[0]!r}", unknown[0])
        choices = {"kind": KINDS, "strategy": STRATEGIES, "error_policy": ERROR_POLICIES}
        for name, allowed in choices.items():
            if name in d and d[name] not in allowed:
                raise SettingsError(f"must be one of {', '.join(allowed)}", name)
        for name in ("reasoning_loss", "tokenized"):
            if name in d and isinstance(d[name], str):
                d[name] = d[name].lower() in ("1", "true", "yes", "on")
        if d.get("max_length") not in (None, ""):
            try:
                d["max_length"] = int(d["max_length"])
            except (TypeError, ValueError):
                raise SettingsError("must be a whole number of tokens", "max_length") from None
            if d["max_length"] < 16:
                raise SettingsError("must be at least 16 tokens", "max_length")
        elif "max_length" in d:
            d["max_length"] = None
        for name in ("template", "tokenizer"):
            if name in d and not isinstance(d[name], str):
                raise SettingsError("must be text", name)
        if not d.get("template", cls.template):
            raise SettingsError("name a chat template", "template")
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)

    def render_settings(self):
        """The core's ``RenderSettings`` for these settings."""
        from training.render import RenderSettings

        return RenderSettings(strategy=self.strategy, reasoning_loss=self.reasoning_loss,
                              error_policy=self.error_policy, max_length=self.max_length,
                              tokenized=self.tokenized)


def resolve_template(spec: str, roots=None):
    """The ``ChatTemplate`` for a name, folder or file; ``SettingsError`` when there is none.

    With ``roots``, a folder or file must lie inside one of them (``chat_templates.get_template``).
    """
    from training.chat_templates import TemplateError, get_template

    try:
        return get_template(spec, roots=roots)
    except (TemplateError, OSError, ValueError) as e:
        raise SettingsError(str(e), "template") from None


def tokenizer_files_fingerprint(path: str) -> str:
    """sha256 over a tokenizer folder's files (cheap: no tokenizer is loaded)."""
    folder = Path(path)
    if not folder.is_dir():
        raise SettingsError(f"no tokenizer folder at {path}", "tokenizer")
    files = [folder / n for n in _TOKENIZER_FILES if (folder / n).is_file()]
    if not files:
        raise SettingsError(f"{path} holds no tokenizer files (tokenizer.json, tokenizer_config.json ...)",
                            "tokenizer")
    return _files_sha(tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files))


@lru_cache(maxsize=32)
def _files_sha(stamps: tuple) -> str:
    h = hashlib.sha256()
    for name, _, _ in stamps:
        h.update(Path(name).name.encode() + b"\0")
        h.update(Path(name).read_bytes())
    return h.hexdigest()[:16]


def content_fingerprint(settings: ExportSettings) -> dict:
    """What the content hash covers of the settings: the settings themselves, the template's text
    and the tokenizer's files (by content, not by path), and the render and export code versions."""
    from training.render import RENDER_VERSION

    template = resolve_template(settings.template)
    d = settings.to_dict()
    d.pop("tokenizer")
    return {"settings": d, "template": {"name": template.name, "sha": template.sha},
            "tokenizer": tokenizer_files_fingerprint(settings.tokenizer),
            "render_version": RENDER_VERSION, "export_version": EXPORT_VERSION}


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """sha256 of the render core's and this module's source: a code change misses the render cache."""
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in ("chat_templates.py", "render.py", "masks.py", "split.py", "audit.py", "export.py"):
        p = here / name
        if p.exists():
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


# --- the render context (worker side) ------------------------------------------------------------

@lru_cache(maxsize=4)
def load_tokenizer(path: str):
    """A tokenizer from a local folder, loaded once per process."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise SettingsError(f"cannot load a tokenizer from {path}: {e}", "tokenizer") from None


@dataclass
class RenderContext:
    """Everything ``render_item`` needs, built once per export."""

    settings: ExportSettings
    template: Any
    tokenizer: Any
    render_settings: Any
    cache_key: str

    @classmethod
    def build(cls, settings: ExportSettings) -> "RenderContext":
        from training.render import settings_key

        # The template as chosen: the splitter decides from its behaviour how to train as it infers,
        # and masks come from its markers where it has them (prefix-diffing always).
        template = resolve_template(settings.template)
        tokenizer = load_tokenizer(settings.tokenizer)
        rs = settings.render_settings()
        key = hashlib.sha256(json.dumps([settings.kind, settings_key(template, tokenizer, rs), code_fingerprint(),
                                         EXPORT_VERSION]).encode()).hexdigest()[:32]
        return cls(settings=settings, template=template, tokenizer=tokenizer, render_settings=rs, cache_key=key)


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
            _finding("render_failed", f"{type(e).__name__}: {e}", "error", ident)]}
    rows = out.pop("rows")
    cols = item_columns(ctx.settings, rows)
    out["findings"] += storage_findings(rows, json_columns(cols))
    out.update(item=ident, case_types=_case_types(document, kind), n_rows=len(rows), columns=cols if rows else None,
               tokens=[r["_tokens"] for r in rows if "_tokens" in r])
    return {"result": out, "jsonl": jsonl_text(rows, cols), "arrow": arrow_batch(rows, cols) if rows else b""}


def _finding(code: str, message: str, severity: str, item: str, **where) -> dict:
    return {"code": code, "severity": severity, "message": message, "item": item, **where}


def _case_types(document: dict, kind: str) -> list[str]:
    doc = (document.get("context") if kind == "dpo" else document) or {}
    return sorted(c for c in (doc.get("meta") or {}).get("case_types", []) if c in CASE_TYPES)


# Per-sample fields the files and the audit do not need (the preview page renders afresh).
_HEAVY_SAMPLE_FIELDS = ("text", "regions", "supervised_spans")
_SFT_ROW_FIELDS = ("messages", "prompt", "completion", "tools", "chat_template_kwargs",
                   "input_ids", "labels", "assistant_masks")


def _render_sft(document: dict, ident: str, ctx: RenderContext) -> dict:
    from training.render import render_sample

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
            out.append(_finding("completion_holds_tool_results", (
                f"the completion holds {tools} tool result(s), which TRL's completion-only loss would train: "
                "export tokenized (labels column) so only the assistant's tokens are trained"),
                "error", item, sample=row["id"]))
    return out


def _render_prompt(document: dict, ident: str, ctx: RenderContext) -> dict:
    """One row per decision point (after each user message and each block of tool results): the
    context as messages, and the gold continuation as the evaluation reference."""
    from evaluation.scoring import references_from_trajectory
    from training.render import Renderer, to_conversation

    traj = Trajectory.from_dict(document)
    tools = to_conversation(traj, ctx.template).tools
    renderer = Renderer.for_tokenizer(ctx.template, ctx.tokenizer)
    rows, findings = [], []
    for ref in references_from_trajectory(traj):
        ti, si = _decision_point(ref.item_id)
        prompt = to_conversation(truncate_before(traj, ti, si), ctx.template).messages
        text, _ = renderer.render(prompt, tools, add_generation_prompt=True)
        n_tokens = len(ctx.tokenizer(text, add_special_tokens=False)["input_ids"])
        row_id = f"{ident}#t{ti}s{si}"
        if ctx.settings.max_length is not None and n_tokens > ctx.settings.max_length:
            findings.append(_finding("prompt_too_long", f"the prompt is {n_tokens} tokens, over max_length "
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
    from annotate.pairs import Pair, audit_rendered_pair
    from training.render import Renderer, to_conversation

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
    findings = [_finding(p.code, p.message, p.severity, ident) for p in problems]
    row = {"id": ident, "prompt": prompt, "chosen": chosen.messages[n:], "rejected": rejected.messages[n:],
           "tools": chosen.tools, "_tokens": max(n_chosen, n_rejected)}
    return {"rows": [row], "render": None, "findings": findings,
            "pair": {"category": pair.category, "source": pair.source}}


# --- the export ----------------------------------------------------------------------------------

class RenderCache(Protocol):
    def get_many(self, keys: list[str]) -> dict[str, dict]: ...

    def put_many(self, results: dict[str, dict]) -> None: ...


class MemoryCache:
    """A render cache in a dict (tests, benchmarks, the CLI without a database)."""

    def __init__(self):
        self.entries: dict[str, dict] = {}

    def get_many(self, keys):
        return {k: self.entries[k] for k in keys if k in self.entries}

    def put_many(self, results):
        self.entries.update(results)


@dataclass(frozen=True)
class ExportItem:
    """One pinned item: its cache key (``r<revision id>`` / ``p<sha>``), the id its rows carry, its split."""

    key: str
    ident: str
    split: str = "train"


@dataclass
class ExportResult:
    out_dir: Path
    items: int
    samples: int
    rendered: int  # items rendered now (the rest came from the cache)
    audit: dict
    splits: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return self.audit["errors"]


Progress = Callable[[float, str], None]


def run_export(items: list[ExportItem], settings: ExportSettings, out_dir: Path, *,
               load_documents: Callable[[list[str]], dict[str, dict]], cache: RenderCache | None = None,
               cache_for: Callable[[str], RenderCache] | None = None, snapshot_meta: dict | None = None,
               on_progress: Progress | None = None, chunk: int = 200) -> ExportResult:
    """Render (or take from the cache) every item, then write the files. See the module docstring.

    ``load_documents(keys)`` returns the documents of the items the cache does not hold;
    ``cache_for(settings_hash)`` builds the cache once the settings hash is known (or pass ``cache``).
    ``on_progress(fraction, message)`` is called as the work advances.
    """
    progress = on_progress or (lambda f, m: None)
    out_dir = Path(out_dir)
    progress(0.0, "loading the tokenizer and template")
    ctx = RenderContext.build(settings)
    cache = cache if cache is not None else (cache_for(ctx.cache_key) if cache_for else MemoryCache())
    entries: dict[str, dict] = {}
    keys = list(dict.fromkeys(it.key for it in items))
    for start in range(0, len(keys), 2000):
        entries.update(cache.get_many(keys[start:start + 2000]))
    missing = [k for k in keys if k not in entries]
    idents = {it.key: it.ident for it in items}
    progress(0.02, f"{len(keys) - len(missing)} of {len(keys)} items cached; rendering {len(missing)}")
    for start in range(0, len(missing), chunk):
        batch = missing[start:start + chunk]
        docs = load_documents(batch)
        fresh = {k: render_item(docs[k], idents[k], ctx) for k in batch}
        cache.put_many(fresh)
        entries.update(fresh)
        done = start + len(batch)
        progress(0.02 + 0.83 * done / max(1, len(missing)), f"rendered {done} of {len(missing)} items")
    results = [entries[k]["result"] for k in keys]
    rows = sum(r["n_rows"] for r in results)
    progress(0.85, f"writing {rows} rows")
    by_split: dict[str, list[dict]] = {}
    for it in items:
        by_split.setdefault(it.split, []).append(entries[it.key])
    audit = aggregate_audit(results, settings)
    write_files(out_dir, by_split, snapshot_columns(settings, results), ctx, audit, snapshot_meta or {})
    progress(1.0, "done")
    return ExportResult(out_dir=out_dir, items=len(keys), samples=rows, rendered=len(missing), audit=audit,
                        splits={s: sum(e["result"]["n_rows"] for e in es) for s, es in by_split.items()})


# --- the audit of the whole snapshot ---------------------------------------------------------------

def aggregate_audit(results: list[dict], settings: ExportSettings) -> dict:
    """The snapshot's audit: the core's aggregate for ``sft`` (supervised tokens by role and step
    kind, leaks, mask cross-checks, invalid calls, truncation, case-type coverage), the same shape
    for ``dpo`` / ``prompt``, plus this module's per-item findings."""
    from training import audit as audit_mod

    if settings.kind == "sft":
        report = audit_mod.aggregate([r["render"] for r in results if r.get("render") is not None])
    else:
        report = _aggregate_rows(results)
    extra = [f for r in results for f in r.get("findings", [])]
    if settings.kind == "sft" and not settings.tokenized:
        extra += masks_lost_in_messages(results)
    report["totals"]["items"] = len(results)
    report["totals"]["items_without_rows"] = sum(1 for r in results if not r["n_rows"])
    report["totals"]["rows"] = sum(r["n_rows"] for r in results)
    add_findings(report, extra)
    if settings.kind == "dpo":
        report["pair_categories"] = dict(sorted(Counter(r["pair"]["category"] for r in results if r.get("pair")).items()))
        report["pair_sources"] = dict(sorted(Counter(r["pair"]["source"] for r in results if r.get("pair")).items()))
    report["kind"] = settings.kind
    return report


def masks_lost_in_messages(results: list[dict]) -> list[dict]:
    """Errors for conversational samples whose policies mask part of an assistant message.

    TRL's SFTTrainer trains every assistant message of a ``messages`` row; a step kept out of the
    loss (train flag off, error labels under ``mask``, reasoning with reasoning loss off) would be
    trained anyway. Exporting with ``tokenized`` puts our labels in the rows, and TRL uses them.
    """
    out = []
    for r in results:
        for s in (r.get("render") or {}).get("samples", []):
            masked = s.get("masked_steps") or []
            if masked:
                why = sorted({m["why"] for m in masked})
                out.append(_finding("masks_need_tokenized", (
                    f"{len(masked)} step(s) are out of the loss ({'; '.join(why)}) but a messages row cannot say so: "
                    "TRL would train them. Export tokenized (labels column) to honour the mask"),
                    "error", r["item"], sample=s["id"]))
    return out


def _aggregate_rows(results: list[dict]) -> dict:
    """``training.audit.aggregate``'s shape for kinds the core does not render (``dpo``, ``prompt``)."""
    from training import audit as audit_mod

    coverage = Counter(c for r in results for c in r.get("case_types", []))
    tokens = [n for r in results for n in r.get("tokens", [])]
    report = {"totals": {"samples": sum(r["n_rows"] for r in results), "tokens": sum(tokens),
                         "max_tokens": max(tokens, default=0)},
              "case_type_coverage": {c: coverage.get(c, 0) for c in CASE_TYPES},
              "findings": {}, "errors": 0, "warnings": 0, "blocking": False, "examples": []}
    missing = [audit_mod.finding("case_type_missing", f"no item of case type {CASE_TYPE_NAMES[c]!r}", case_type=c)
               for c in CASE_TYPES if not coverage.get(c)]
    add_findings(report, missing)
    return report


def add_findings(report: dict, findings: list[dict]) -> None:
    """Count ``findings`` into an aggregate report (codes, errors, warnings, examples, blocking)."""
    from training.audit import MAX_EXAMPLES

    codes = Counter(report.get("findings", {}))
    for f in findings:
        codes[f["code"]] += 1
        if f["severity"] == "error":
            report["errors"] += 1
        elif f["severity"] == "warning":
            report["warnings"] += 1
        if len(report["examples"]) < MAX_EXAMPLES or f["severity"] == "error" and _replace_lesser(report["examples"], f):
            report["examples"].append(f)
    report["findings"] = dict(sorted(codes.items()))
    report["blocking"] = report["errors"] > 0
    rank = {"error": 0, "warning": 1}
    report["examples"].sort(key=lambda f: rank.get(f.get("severity"), 2))  # stable: errors first


def _replace_lesser(examples: list[dict], f: dict) -> bool:
    """Make room for an error among examples full of lesser findings (errors are what a lead must see)."""
    for i, e in enumerate(examples):
        if e.get("severity") != "error":
            del examples[i]
            return True
    return False


def storage_findings(rows: list[dict], json_cols: list[str]) -> list[dict]:
    """Errors for rows whose JSON values ``datasets.load_from_disk`` would not hand back unchanged.

    ``datasets.Json()`` decodes with pandas' ujson, which rounds some floats (``0.000123`` comes
    back as ``0.00012299999999999998``): the model would train on text that differs from the
    rendered one. Such rows are reported (an error: the lead decides), with the value concerned.
    """
    from datasets.utils.json import ujson_loads

    findings = []
    for row in rows:
        for col in json_cols:
            for value in _as_list(row.get(col)):
                if not _has_float(value):
                    continue
                text = json.dumps(value, ensure_ascii=False)
                try:
                    back = ujson_loads(text)
                except ValueError:  # e.g. an integer beyond 64 bits
                    back = None
                if back != value or json.dumps(back, ensure_ascii=False) != text:
                    findings.append(_finding(
                        "json_float_rounding", f"a number in {col} does not survive datasets.Json() storage "
                        f"({_first_float_change(value, back)}); TRL would train on the rounded text",
                        "error", row["id"].split(":")[0].split("#")[0], sample=row["id"]))
                    break
    return findings


def _has_float(value) -> bool:
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, float):
            return True
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


def _first_float_change(a, b) -> str:
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if isinstance(x, dict) and isinstance(y, dict):
            stack.extend((x[k], y.get(k)) for k in x)
        elif isinstance(x, list) and isinstance(y, list):
            stack.extend(zip(x, y))
        elif x != y or type(x) is not type(y):
            return f"{x!r} loads as {y!r}"
    return "key order or formatting changes"


def _as_list(v) -> list:
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


# --- files -------------------------------------------------------------------------------------

_JSON_COLUMNS = ("messages", "prompt", "completion", "chosen", "rejected", "tools")


def item_columns(settings: ExportSettings, rows: list[dict]) -> list[str]:
    """The columns of the files. ``sft`` rows are TRL's conversational ``messages``, or
    ``prompt`` / ``completion`` when the splitter chose one sample per turn."""
    if settings.kind == "dpo":
        return ["id", "prompt", "chosen", "rejected", "tools"]
    if settings.kind == "prompt":
        return ["id", "prompt", "tools", "reference", "case_types"]
    cols = ["id", "prompt", "completion", "tools"] if rows and "prompt" in rows[0] else ["id", "messages", "tools"]
    if settings.tokenized:
        cols += ["input_ids", "labels", "assistant_masks"]
    return cols


def snapshot_columns(settings: ExportSettings, results: list[dict]) -> list[str]:
    """The one column layout of a snapshot's items (the splitter decides per template, so one per snapshot)."""
    layouts = {tuple(r["columns"]) for r in results if r.get("columns")}
    if len(layouts) > 1:
        raise ValueError(f"items rendered to different column layouts: {sorted(layouts)}")
    return list(layouts.pop()) if layouts else item_columns(settings, [])


def json_columns(cols: list[str]) -> list[str]:
    return [c for c in cols if c in _JSON_COLUMNS]


def features(cols: list[str]):
    """The ``datasets.Features`` of the rows: a JSON value per message / tool, never a struct."""
    from datasets import Features, Json, List, Value

    f: dict[str, Any] = {"id": Value("string"), "reference": Value("string"), "case_types": List(Value("string")),
                         "input_ids": List(Value("int32")), "labels": List(Value("int32")),
                         "assistant_masks": List(Value("int8"))}
    return Features({c: List(Json()) if c in _JSON_COLUMNS else f[c] for c in cols})


def jsonl_text(rows: list[dict], cols: list[str]) -> str:
    return "".join(json.dumps({c: row.get(c) for c in cols}, ensure_ascii=False) + "\n" for row in rows)


@lru_cache(maxsize=16)
def _schema(cols: tuple[str, ...]):
    return features(list(cols)).arrow_schema


def arrow_batch(rows: list[dict], cols: list[str]) -> bytes:
    """The rows as one serialised Arrow record batch (schema: ``features(cols)``).

    JSON values are encoded with ``json`` here (exact floats, key order kept) and stored as JSON
    text: ``datasets`` decodes them back to objects when TRL reads a row.
    """
    return record_batch(rows, cols).serialize().to_pybytes()


def record_batch(rows: list[dict], cols: list[str]):
    import pyarrow as pa

    schema = _schema(tuple(cols))
    arrays = []
    for c, field_ in zip(cols, schema):
        values = [row.get(c) for row in rows]
        if c in _JSON_COLUMNS:
            offsets, flat = [0], []
            for v in values:
                flat.extend(json.dumps(x, ensure_ascii=False) for x in v or [])
                offsets.append(len(flat))
            storage = pa.ExtensionArray.from_storage(field_.type.value_type, pa.array(flat, type=pa.string()))
            arrays.append(pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), storage))
        else:
            arrays.append(pa.array(values, type=field_.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def write_files(out_dir: Path, by_split: dict[str, list[dict]], cols: list[str], ctx: RenderContext, audit: dict,
                snapshot_meta: dict) -> None:
    """Write every file of the snapshot into ``out_dir`` (replacing what an earlier export left there).

    ``by_split`` holds each split's cache entries in row order.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("hf", "parquet"):
        if (out_dir / stale).exists():
            shutil.rmtree(out_dir / stale)
    for old in out_dir.glob("*.jsonl"):
        old.unlink()
    splits = [s for s in SPLIT_ORDER if any(e["result"]["n_rows"] for e in by_split.get(s, []))] or ["train"]
    for s in splits:
        with open(out_dir / f"{s}.jsonl", "w", encoding="utf-8", newline="\n") as fh:
            fh.writelines(e["jsonl"] for e in by_split.get(s, []))
    _write_datasets(out_dir, {s: by_split.get(s, []) for s in splits}, cols)
    counts = {s: sum(e["result"]["n_rows"] for e in by_split.get(s, [])) for s in splits}
    meta = {"kind": ctx.settings.kind, **snapshot_meta, "settings": ctx.settings.to_dict(),
            "template": ctx.template.traits(), "render_settings_key": ctx.cache_key, "columns": cols,
            "splits": counts}
    _write_json(out_dir / "snapshot.json", meta)
    _write_json(out_dir / "audit.json", audit)
    (out_dir / "chat_template.jinja").write_text(ctx.template.text, encoding="utf-8")
    (out_dir / "README.md").write_text(dataset_card(meta, audit), encoding="utf-8")


def _write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _write_datasets(out_dir: Path, by_split: dict[str, list[dict]], cols: list[str]) -> None:
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    datasets.disable_progress_bars()
    feats = features(cols)
    schema = feats.arrow_schema
    dd = datasets.DatasetDict()
    for s, entries in by_split.items():
        batches = [pa.ipc.read_record_batch(pa.py_buffer(e["arrow"]), schema) for e in entries if e["arrow"]]
        table = pa.Table.from_batches(batches or [record_batch([], cols)], schema=schema).combine_chunks()
        # The fingerprint datasets would compute pickles the whole table; the rows' own bytes say the same.
        digest = hashlib.sha256(json.dumps(cols).encode())
        for e in entries:
            digest.update(e["arrow"])
        dd[s] = datasets.Dataset(table, info=datasets.DatasetInfo(features=feats), fingerprint=digest.hexdigest()[:16])
    dd.save_to_disk(str(out_dir / "hf"))
    (out_dir / "parquet").mkdir()
    for s, ds in dd.items():
        pq.write_table(ds.data.table, out_dir / "parquet" / f"{s}.parquet", compression="zstd",
                       write_statistics=False)


def dataset_card(meta: dict, audit: dict) -> str:
    """The dataset card: what the snapshot holds, how it was rendered, and its audit in numbers."""
    st = meta["settings"]
    totals = audit.get("totals", {})
    lines = [
        "---",
        "tags: [trajectory-studio, tool-calling, trl]",
        "---",
        "",
        f"# Trajectory Studio snapshot ({meta['kind']})",
        "",
        f"Content hash: `{meta.get('content_hash', '')}`",
        "",
        "## Rendering",
        "",
        f"- chat template: `{meta['template']['name']}` (family {meta['template']['family']}, "
        f"sha {meta['template']['sha']}, saved as `chat_template.jinja`)",
        f"- tokenizer: `{st['tokenizer']}`",
        f"- strategy: {st['strategy']}"
        + (f" (chosen: {', '.join(f'{k} for {v} items' for k, v in audit['strategies'].items())})"
           if audit.get("strategies") else "")
        + f"; reasoning in the loss: {'yes' if st['reasoning_loss'] else 'no'}; steps with error labels: "
        f"{st['error_policy']}; max length: {st['max_length']}; tokenized: {'yes' if st['tokenized'] else 'no'}",
        "",
        "## Contents",
        "",
        "| split | rows |",
        "|---|---|",
        *[f"| {name} | {n} |" for name, n in meta["splits"].items()],
        "",
        f"Items: {totals.get('items', 0)}; rows: {totals.get('rows', 0)}; "
        f"items without rows: {totals.get('items_without_rows', 0)}.",
        "",
        "Load with `datasets.load_from_disk(\"hf\")`: columns " + ", ".join(f"`{c}`" for c in meta["columns"]) +
        ". Messages and tool schemas are JSON values (`datasets.Json()`), which TRL's trainers read unchanged.",
        "",
        "## Case types",
        "",
        "| case type | items |",
        "|---|---|",
        *[f"| {CASE_TYPE_NAMES[c]} | {n} |" for c, n in audit.get("case_type_coverage", {}).items()],
        "",
        "## Audit",
        "",
    ]
    for label, key in (("tokens", "totals"), ("supervised tokens by role", "supervised_by_role"),
                       ("supervised tokens by step kind", "supervised_by_kind"),
                       ("tokens under each strategy", "strategy_tokens"), ("findings", "findings")):
        if audit.get(key):
            lines.append(f"- {label}: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in audit[key].items()))
    lines.append(f"- errors: {audit.get('errors', 0)}; warnings: {audit.get('warnings', 0)}")
    return "\n".join(lines) + "\n"


def directory_digest(out_dir: Path) -> dict[str, str]:
    """sha256 of every file under ``out_dir`` (relative path -> hex): how tests prove byte-identity."""
    out = {}
    for p in sorted(Path(out_dir).rglob("*")):
        if p.is_file():
            out[str(p.relative_to(out_dir))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out
