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
``evaluation.scoring.Reference.to_dict()`` JSON text; evaluation registers how references are made,
see ``renderers``), ``case_types``.

Messages and tool schemas are stored as ``datasets.Json()`` values (one JSON text per message /
tool), never as Arrow structs: a struct column gives every row the union of all rows' keys, so a
tool call's arguments would gain ``null`` keys and render differently. Deterministic: the same
items and settings give byte-identical files (no timestamps, stable key order, fixed Parquet
options). Heavy libraries (transformers, datasets, pyarrow) load inside the functions that need them.

The package, by concern (each module imports only those above it, ``annotate``'s pure canonical
model and pairs, and the render core):

    settings.py    ExportSettings, fingerprints (content hash, code), the render context
    card.py        the dataset card
    writers.py     columns, JSONL lines, Arrow batches, the files
    report.py      the snapshot's audit: the core's aggregate plus per-item findings
    renderers.py   one item -> its cache entry (``sft``, ``dpo``, ``prompt``)
    pipeline.py    ``run_export``: cache, render, audit, write
"""


from training.export.card import dataset_card
from training.export.pipeline import ExportItem, ExportResult, MemoryCache, RenderCache, run_export
from training.export.renderers import register_reference_builder, render_item, split_pair_messages
from training.export.report import aggregate_audit
from training.export.settings import (DEFAULT_MAX_LENGTH, ERROR_POLICIES, EXPORT_VERSION, KINDS, STRATEGIES,
                                      ExportSettings, RenderContext, SettingsError, code_fingerprint,
                                      content_fingerprint, load_tokenizer, resolve_template)
from training.export.writers import directory_digest, write_files

__all__ = ["DEFAULT_MAX_LENGTH", "ERROR_POLICIES", "EXPORT_VERSION", "KINDS", "STRATEGIES", "ExportItem",
           "ExportResult", "ExportSettings", "MemoryCache", "RenderCache", "RenderContext", "SettingsError",
           "aggregate_audit", "code_fingerprint", "content_fingerprint", "dataset_card", "directory_digest",
           "load_tokenizer", "register_reference_builder", "render_item", "resolve_template", "run_export",
           "split_pair_messages", "write_files"]
