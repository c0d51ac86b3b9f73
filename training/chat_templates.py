"""A registry of chat templates (pure; no Django, no trl import).

Three sources:

- **TRL's shipped templates** (``trl/chat_templates/*.jinja``), read from the installed package's
  folder without importing trl (its trainers cost seconds to import). Originals and their
  ``*_training`` variants, recognised by family.
- **Derived training templates** for tool-calling originals that TRL ships without a training
  variant (Llama 3.1 / 3.2): the original text with ``{% generation %}`` markers added around what
  the assistant writes, and nothing else changed (a test renders both and compares).
- A model's own template from a **local model/tokenizer folder**, and **custom Jinja** a lead uploads.

A template's *traits* say what the rendering code needs to know: which message field it reads
reasoning from (``reasoning_content``, ``thinking``, or inline ``<think>`` in the content), whether
it has ``{% generation %}`` markers, whether it renders tool calls, and whether it takes several
calls in one assistant message.

>>> t = get_template("qwen3_training")
>>> (t.family, t.source, t.has_generation_markers, t.reasoning_field)
('qwen3', 'trl', True, 'reasoning_content')
>>> get_template("qwen3").training_name
'qwen3_training'
>>> get_template("llama3_1_training").has_generation_markers
True
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from core.errors import InputError
from training.paths import PathRefused, confine, is_path_like

GENERATION_RE = re.compile(r"\{%-?\s*generation\s*-?%\}")
_COMMENT_RE = re.compile(r"\{#.*?#\}", re.S)
_VERSION_SUFFIX_RE = re.compile(r"_v\d+$")

# Families whose name is not simply the file stem minus ``_training`` / ``_vN``.
_FAMILY_OF_STEM = {
    "llama3_1": "llama3",
    "llama3_2": "llama3",
    "qwen3_5_think": "qwen3_5",
    "qwen3_5_nothink": "qwen3_5",
    "lfm2_2_5_vl": "lfm2_2_5",
}

# Templates that take one tool call per assistant message (parallel calls become consecutive
# assistant messages), and drop ``content`` when a message carries tool calls.
_ONE_CALL_PER_MESSAGE = {"llama3_1", "llama3_2", "gptoss"}
_NO_CONTENT_WITH_CALLS = {"llama3_1", "llama3_2", "gptoss"}

REASONING_FIELDS = ("reasoning_content", "thinking", "inline_think")


class TemplateError(InputError):
    """A template name, folder or text that cannot be used (the caller names the field)."""


@dataclass(frozen=True)
class ChatTemplate:
    """One chat template and what the renderer needs to know about it."""

    name: str
    family: str
    text: str
    source: str  # "trl", "derived", "model", "custom"
    training_name: str = ""  # the registry name of its training variant, if any
    # For an original without markers: the same template with {% generation %} markers added and
    # nothing else changed (renders the same text), so its masks can still be cross-checked.
    marked_text: str = ""

    @property
    def sha(self) -> str:
        """Content hash: part of every render-settings hash, so an edited template re-renders."""
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]

    @property
    def is_training(self) -> bool:
        return self.name.endswith("_training")

    @property
    def has_generation_markers(self) -> bool:
        return has_generation_markers(self.text)

    @property
    def reasoning_field(self) -> str | None:
        return reasoning_field(self.text)

    @property
    def markers_text(self) -> str | None:
        """The text to render with when generation spans are wanted (None: no markers to be had)."""
        if self.has_generation_markers:
            return self.text
        return self.marked_text or None

    @property
    def renders_tool_calls(self) -> bool:
        return "tool_calls" in _code(self.text)

    @property
    def one_call_per_message(self) -> bool:
        return _stem(self.name) in _ONE_CALL_PER_MESSAGE

    @property
    def content_with_calls(self) -> bool:
        return _stem(self.name) not in _NO_CONTENT_WITH_CALLS

    @property
    def trusted(self) -> bool:
        """Shipped with an installed package (or derived from one): safe to render unsandboxed."""
        return self.source in ("trl", "derived") or identify(self.text) is not None

    def traits(self) -> dict:
        """JSON-serialisable summary (shown in the UI and stored with a snapshot)."""
        return {
            "name": self.name,
            "family": self.family,
            "source": self.source,
            "sha": self.sha,
            "generation_markers": self.has_generation_markers,
            "reasoning_field": self.reasoning_field,
            "tool_calls": self.renders_tool_calls,
            "one_call_per_message": self.one_call_per_message,
            "content_with_calls": self.content_with_calls,
            "training_variant": self.training_name or None,
        }


def has_generation_markers(text: str) -> bool:
    """True when the template wraps assistant output in ``{% generation %}`` blocks."""
    return bool(GENERATION_RE.search(_code(text)))


def reasoning_field(text: str) -> str | None:
    """Which field the template reads reasoning from, by reading its code (comments ignored).

    ``reasoning_content`` wins over ``thinking`` (templates that read both fall back from one to
    the other); ``inline_think`` means the template only understands ``<think>`` inside the content.

    >>> reasoning_field("{{ message.reasoning_content }}"), reasoning_field("{{ '<think>' + c }}")
    ('reasoning_content', 'inline_think')
    >>> reasoning_field("{{ message.content }}") is None
    True
    """
    code = _code(text)
    if "reasoning_content" in code:
        return "reasoning_content"
    if re.search(r"message\.thinking|[\"']thinking[\"']\s+in\s+message|message\[[\"']thinking[\"']\]", code):
        return "thinking"
    if "<think>" in code:
        return "inline_think"
    return None


def trl_templates_dir() -> Path:
    """The installed trl package's ``chat_templates`` folder (found without importing trl)."""
    spec = importlib.util.find_spec("trl")
    if spec is None or not spec.submodule_search_locations:
        raise TemplateError("trl is not installed; it ships the chat templates")
    return Path(list(spec.submodule_search_locations)[0]) / "chat_templates"


def family_of(name: str) -> str:
    """``qwen3_training`` -> ``qwen3``; ``gemma4_v2`` -> ``gemma4``; ``llama3_1`` -> ``llama3``."""
    stem = _stem(name)
    return _FAMILY_OF_STEM.get(stem, _VERSION_SUFFIX_RE.sub("", stem))


@lru_cache(maxsize=1)
def _registry() -> dict[str, ChatTemplate]:
    folder = trl_templates_dir()
    texts = {p.stem: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.jinja"))}
    for name, (base, patches) in _DERIVED.items():
        if base in texts and name not in texts:
            texts[name] = _apply_patches(texts[base], patches, name)
    out = {}
    for name, text in texts.items():
        source = "derived" if name in _DERIVED and not (folder / f"{name}.jinja").exists() else "trl"
        training = f"{name}_training" if f"{name}_training" in texts else ""
        marked = _apply_patches(text, _MARKED_TWINS[name], f"{name} (marked)") if name in _MARKED_TWINS else ""
        out[name] = ChatTemplate(name=name, family=family_of(name), text=text, source=source,
                                 training_name=training, marked_text=marked)
    return out


def list_templates() -> list[ChatTemplate]:
    """Every known template (TRL's and the derived ones), sorted by name."""
    return [t for _, t in sorted(_registry().items())]


def families() -> dict[str, list[str]]:
    """Family -> template names, e.g. ``{"qwen3": ["qwen3", "qwen3_training"], ...}``."""
    out: dict[str, list[str]] = {}
    for t in list_templates():
        out.setdefault(t.family, []).append(t.name)
    return out


def identify(text: str) -> ChatTemplate | None:
    """The registry template whose text is exactly ``text`` (how a model's own template is recognised)."""
    return _by_text().get(text)


@lru_cache(maxsize=1)
def _by_text() -> dict[str, ChatTemplate]:
    return {t.text: t for t in _registry().values()}


def get_template(spec: str, roots: Iterable[str | os.PathLike] | None = None) -> ChatTemplate:
    """A template by registry name, from Jinja text, or by model/tokenizer folder.

    ``spec`` is tried as a registry name first, then as template text when it contains Jinja
    tags, then as a path (a folder holding a tokenizer config or ``chat_template.jinja``, or a
    ``.jinja`` file). With ``roots`` (what the server passes for anything a user typed), the path
    must lie inside one of them (``training.paths.confine``): outside, missing or not, and through
    a symlink alike, it is refused with one message.
    """
    reg = _registry()
    if spec in reg:
        return reg[spec]
    if "{%" in spec or "{{" in spec:
        return custom_template(spec)
    if roots is not None:
        if not is_path_like(spec):
            raise TemplateError(f"unknown chat template {spec[:100]!r}: not a registry name, a folder or Jinja text")
        try:
            path = Path(confine(spec, roots))
        except PathRefused as e:
            raise TemplateError(e.message) from None
        if not path.is_dir() and path.suffix != ".jinja":
            raise TemplateError(f"{spec}: give a model or tokenizer folder or a .jinja file")
    else:
        path = Path(spec)
    if path.is_dir():
        return from_model_folder(path)
    if path.is_file():
        return custom_template(path.read_text(encoding="utf-8"), name=path.stem)
    raise TemplateError(f"unknown chat template {spec[:100]!r}: not a registry name, a folder or Jinja text")


def training_variant(t: ChatTemplate) -> ChatTemplate | None:
    """The template with ``{% generation %}`` markers for ``t``'s family variant (itself if it has them)."""
    if t.has_generation_markers:
        return t
    return _registry().get(t.training_name) if t.training_name else None


def from_model_folder(folder: Path) -> ChatTemplate:
    """The chat template saved with a local model or tokenizer.

    Looks at ``chat_template.jinja`` (transformers 4.43+ layout), then ``chat_template.json``,
    then ``tokenizer_config.json``'s ``chat_template`` (a string, or a list of named variants
    whose ``default`` is used). A text equal to a registry template takes that template's name.
    """
    folder = Path(folder)
    text = None
    if (folder / "chat_template.jinja").is_file():
        text = (folder / "chat_template.jinja").read_text(encoding="utf-8")
    elif (folder / "chat_template.json").is_file():
        text = json.loads((folder / "chat_template.json").read_text(encoding="utf-8")).get("chat_template")
    elif (folder / "tokenizer_config.json").is_file():
        text = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8")).get("chat_template")
    if isinstance(text, list):
        named = {v.get("name"): v.get("template") for v in text if isinstance(v, dict)}
        text = named.get("default")
    if not isinstance(text, str) or not text:
        raise TemplateError(f"no chat template in {folder}")
    known = identify(text)
    if known is not None:
        return known
    return ChatTemplate(name=f"model:{folder.name}", family="custom", text=text, source="model")


def custom_template(text: str, name: str | None = None) -> ChatTemplate:
    """A lead's own Jinja text. A text equal to a registry template takes that template's name."""
    if not isinstance(text, str) or not text.strip():
        raise TemplateError("a custom chat template must be non-empty text")
    known = identify(text)
    if known is not None:
        return known
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return ChatTemplate(name=f"custom:{name or digest}", family="custom", text=text, source="custom")


# --- derived training templates -------------------------------------------------------------

_L31_GENERIC = (
    "        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim"
    " + '<|eot_id|>' }}\n"
)
_L31_GENERIC_MARKED = (
    "        {%- if message.role == 'assistant' %}\n"
    "            {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n"
    "            {%- generation %}\n"
    "            {{- message['content'] | trim + '<|eot_id|>' }}\n"
    "            {%- endgeneration %}\n"
    "        {%- else %}\n"
    "    " + _L31_GENERIC +
    "        {%- endif %}\n"
)
_HEADER = "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}\n"
_TOOL_BRANCH_END = '    {%- elif message.role == "tool" or message.role == "ipython" %}\n'

# (old, new) replacements, each of which must match exactly once.
_DERIVED: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "llama3_1_training": ("llama3_1", [
        (_L31_GENERIC, _L31_GENERIC_MARKED),
        ("        {%- if builtin_tools is defined and tool_call.name in builtin_tools %}\n            " + _HEADER,
         "        " + _HEADER + "        {%- generation %}\n"
         "        {%- if builtin_tools is defined and tool_call.name in builtin_tools %}\n"),
        ("        {%- else  %}\n            " + _HEADER, "        {%- else  %}\n"),
        (_TOOL_BRANCH_END, "        {%- endgeneration %}\n" + _TOOL_BRANCH_END),
    ]),
    "llama3_2_training": ("llama3_2", [
        (_L31_GENERIC, _L31_GENERIC_MARKED),
        ("        " + _HEADER, "        " + _HEADER + "        {%- generation %}\n"),
        (_TOOL_BRANCH_END, "        {%- endgeneration %}\n" + _TOOL_BRANCH_END),
    ]),
}


_QWEN3_ASSISTANT_OPEN = "        {%- if loop.index0 > ns.last_query_index %}\n            {%- if loop.last or"
_QWEN3_END = "        {{- '<|im_end|>\\n' }}\n    {%- elif message.role == \"tool\" %}\n"

# Originals whose masks would otherwise come from prefix-diffing alone (the original Qwen3 template
# re-renders a turn's messages once the turn continues, so diffing cannot place them all).
_MARKED_TWINS: dict[str, list[tuple]] = {
    "qwen3": [
        (_QWEN3_ASSISTANT_OPEN, "        {{- '<|im_start|>' + message.role + '\\n' }}\n        {%- generation %}\n"
                                + _QWEN3_ASSISTANT_OPEN),
        ("{{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content", "{{- '<think>\\n' + reasoning_content"),
        ("{{- '<|im_start|>' + message.role + '\\n' + content }}", "{{- content }}", 2),
        (_QWEN3_END, "        {{- '<|im_end|>\\n' }}\n        {%- endgeneration %}\n    {%- elif message.role == \"tool\" %}\n"),
    ],
}


def _apply_patches(text: str, patches: list[tuple], name: str) -> str:
    header = (f"{{#- {name}: derived by Trajectory Studio from the original by adding "
              "{% generation %} markers around the assistant's output; nothing else changes. -#}\n")
    for old, new, *count in patches:
        if text.count(old) != (count[0] if count else 1):
            raise TemplateError(f"cannot derive {name}: the original template changed ({old[:40]!r}...)")
        text = text.replace(old, new)
    return header + text


def _stem(name: str) -> str:
    return name[: -len("_training")] if name.endswith("_training") else name


def _code(text: str) -> str:
    return _COMMENT_RE.sub("", text)
