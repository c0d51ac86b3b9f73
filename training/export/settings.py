"""Export settings and fingerprints (pure; no Django): what a snapshot records, what its content hash
covers, and the render context built from them once per export.

``ExportSettings`` are the render settings ``snapshot.json`` records; ``content_fingerprint`` is
what the snapshot's content hash covers of them (the template's text and the tokenizer's files by
content, and the code versions); ``RenderContext`` holds the loaded template and tokenizer and
the render cache key. transformers loads inside ``load_tokenizer`` only: the web process imports
this module for the settings and must not pay for (or hold) torch.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from core.errors import InputError
from training.chat_templates import TemplateError, get_template
from training.render import RENDER_VERSION, RenderSettings, settings_key

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
        return RenderSettings(strategy=self.strategy, reasoning_loss=self.reasoning_loss,
                              error_policy=self.error_policy, max_length=self.max_length,
                              tokenized=self.tokenized)


def resolve_template(spec: str, roots=None):
    """The ``ChatTemplate`` for a name, folder or file; ``SettingsError`` when there is none.

    With ``roots``, a folder or file must lie inside one of them (``chat_templates.get_template``).
    """
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
    template = resolve_template(settings.template)
    d = settings.to_dict()
    d.pop("tokenizer")
    return {"settings": d, "template": {"name": template.name, "sha": template.sha},
            "tokenizer": tokenizer_files_fingerprint(settings.tokenizer),
            "render_version": RENDER_VERSION, "export_version": EXPORT_VERSION}


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """sha256 of the render core's and the export package's source: a code change misses the render cache."""
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    core = [here.parent / name for name in ("chat_templates.py", "render.py", "masks.py", "split.py", "audit.py")]
    for p in [*core, *sorted(here.glob("*.py"))]:
        if p.exists():
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


# --- the render context (worker side) ------------------------------------------------------------

@lru_cache(maxsize=4)
def load_tokenizer(path: str):
    """A tokenizer from a local folder, loaded once per process."""
    from transformers import AutoTokenizer  # here, not at the top: it imports torch (workers only)

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
        # The template as chosen: the splitter decides from its behaviour how to train as it infers,
        # and masks come from its markers where it has them (prefix-diffing always).
        template = resolve_template(settings.template)
        tokenizer = load_tokenizer(settings.tokenizer)
        rs = settings.render_settings()
        key = hashlib.sha256(json.dumps([settings.kind, settings_key(template, tokenizer, rs), code_fingerprint(),
                                         EXPORT_VERSION]).encode()).hexdigest()[:32]
        return cls(settings=settings, template=template, tokenizer=tokenizer, render_settings=rs, cache_key=key)
