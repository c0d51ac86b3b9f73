"""What the preview page shows: a rendered sample, token by token (pure; no Django).

``token_view(sample, tokenizer, renderer)`` turns one ``render_sample`` sample into rows of tokens,
each with its text, id, the role of the message it belongs to, the step kind that owns it (for
supervised tokens) and whether it is supervised. Message boundaries come from rendering each
prefix of the sample's messages and taking where it parts from the full text, the same way
prefix-diffing finds assistant spans, so a token is coloured by the message that produced it.

>>> piece_text("a\\nb\\tc")
'a↵\\nb→c'
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from tokenizers import Tokenizer

from training.export import load_tokenizer
from training.masks import SegmentTokenizer, char_spans_to_token_mask, common_prefix_len

# Drawn for a token holding only some bytes of a character whose other bytes an earlier token drew.
PART_OF_CHARACTER = "·"
MAX_TOKENS = 6000  # tokens drawn per sample; longer samples are cut with a note (counts stay exact)


@dataclass
class TokenView:
    """One sample, ready for the page."""

    sample_id: str
    tokens: list[dict]
    total: int
    supervised: int
    by_role: dict[str, int] = field(default_factory=dict)
    supervised_by_kind: dict[str, int] = field(default_factory=dict)
    cut: int = 0  # tokens not drawn


def message_bounds(renderer, messages: list[dict], tools: list[dict] | None, text: str) -> list[tuple[int, str]]:
    """``(start, role)`` of each message in ``text``: where the render of the messages before it parts from ``text``.

    Characters before the first message's start (a template preamble) belong to the first message's
    role; a template that is not prefix-stable may misplace a boundary by a few characters, which
    only changes a colour, never a count.
    """
    out: list[tuple[int, str]] = []
    for i, m in enumerate(messages):
        before = renderer.render(messages[:i], tools)[0] if i else ""
        out.append((common_prefix_len(before, text), m["role"]))
    return out


def token_view(sample: dict, tokenizer, renderer, segments: SegmentTokenizer | None = None,
               max_tokens: int = MAX_TOKENS) -> TokenView:
    """The tokens of ``sample`` (a ``render_sample`` sample with ``text``, ``supervised_spans``, ``regions``)."""
    text = sample["text"]
    segments = segments or SegmentTokenizer(tokenizer)
    ids, offsets = segments.encode(text)
    mask, _ = char_spans_to_token_mask(offsets, [tuple(s) for s in sample["supervised_spans"]])
    messages = sample.get("messages") or (sample.get("prompt", []) + sample.get("completion", []))
    bounds = message_bounds(renderer, messages, sample.get("tools") or None, text)
    starts = [b for b, _ in bounds]
    regions = sorted((r for r in sample.get("regions", []) if r["end"] > r["start"]), key=lambda r: r["start"])
    region_starts = [r["start"] for r in regions]
    tokens, by_role, by_kind = [], Counter(), Counter()
    drawn_to = 0  # byte-level tokens of one multi-byte character share its offsets: draw it once
    for n, (tid, (s, e), sup) in enumerate(zip(ids, offsets, mask)):
        k = bisect_right(starts, s) - 1
        role = bounds[k][1] if k >= 0 else (bounds[0][1] if bounds else "template")
        kind = ""
        j = bisect_right(region_starts, s) - 1
        if j >= 0 and s < regions[j]["end"]:
            kind = regions[j]["kind"]
        by_role[role] += 1
        if sup:
            by_kind[kind or "template"] += 1
        if n < max_tokens:
            piece = text[max(s, drawn_to):e]
            tokens.append({"id": int(tid), "text": piece_text(piece) if piece else PART_OF_CHARACTER, "role": role,
                           "kind": kind, "supervised": bool(sup), "partial": not piece})
        drawn_to = max(drawn_to, e)
    return TokenView(sample_id=str(sample.get("id", "")), tokens=tokens, total=len(ids), supervised=sum(mask),
                     by_role=dict(sorted(by_role.items())), supervised_by_kind=dict(sorted(by_kind.items())),
                     cut=max(0, len(ids) - max_tokens))


# --- a tokenizer for the web process ----------------------------------------------------------

_SPECIAL_ATTRIBUTES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


class LightTokenizer:
    """What the render core uses of a transformers tokenizer, built from ``tokenizer.json`` with the
    ``tokenizers`` library alone: importing transformers' tokenizer also imports torch (seconds, and
    hundreds of MB in the web process). A test checks it renders, masks and tokenizes exactly as
    ``AutoTokenizer`` does.
    """

    def __init__(self, folder: str | Path):
        folder = Path(folder)
        self.name_or_path = str(folder)
        self.backend_tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        config = _read_json(folder / "tokenizer_config.json")
        config.update(_read_json(folder / "special_tokens_map.json"))
        self.special_tokens_map = {k: _token_text(config[k]) for k in _SPECIAL_ATTRIBUTES if config.get(k)}
        self.added_tokens_decoder = self.backend_tokenizer.get_added_tokens_decoder()

    def encode(self, text: str) -> list[int]:
        return self.backend_tokenizer.encode(text, add_special_tokens=False).ids

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict:
        return {"input_ids": self.backend_tokenizer.encode(text, add_special_tokens=add_special_tokens).ids}


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _token_text(value) -> str:
    return value.get("content", "") if isinstance(value, dict) else str(value)


@lru_cache(maxsize=4)
def load_preview_tokenizer(folder: str, convert_dir: str | None = None):
    """A ``LightTokenizer`` for the preview, once per process.

    A folder without ``tokenizer.json`` (only ``vocab.json`` / ``merges.txt``) is converted once by
    transformers in a subprocess, saved under ``convert_dir`` and loaded from there, so the web
    process still never imports transformers or torch. Without ``convert_dir``, transformers loads
    it here.
    """
    if (Path(folder) / "tokenizer.json").is_file():
        return LightTokenizer(folder)
    if convert_dir is None:
        return load_tokenizer(folder)
    return LightTokenizer(converted_tokenizer(Path(folder), Path(convert_dir)))


def converted_tokenizer(folder: Path, convert_dir: Path) -> Path:
    """``folder`` saved by transformers (which writes ``tokenizer.json``) under ``convert_dir``, keyed by
    the folder's file contents; converted in a subprocess the first time."""
    h = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix in (".json", ".txt", ".model", ".jinja"):
            h.update(p.name.encode() + b"\0" + p.read_bytes())
    out = convert_dir / h.hexdigest()[:16]
    if not (out / "tokenizer.json").is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
        code = ("import sys; from transformers import AutoTokenizer; "
                "AutoTokenizer.from_pretrained(sys.argv[1]).save_pretrained(sys.argv[2])")
        subprocess.run([sys.executable, "-c", code, str(folder), str(tmp)], check=True, capture_output=True,
                       timeout=600)
        if out.exists():  # another process converted it meanwhile
            shutil.rmtree(tmp)
        else:
            tmp.replace(out)
    return out


def piece_text(s: str) -> str:
    """A token's text with newlines and tabs made visible (the newline is kept, so lines still break)."""
    return s.replace("\n", "↵\n").replace("\t", "→")
