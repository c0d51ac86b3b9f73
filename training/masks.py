"""Loss masks on character spans, computed two independent ways and cross-checked (pure).

1. **Markers**: the character ranges a template's ``{% generation %}`` blocks produced (what TRL's
   SFTTrainer trains with ``assistant_only_loss=True``).
2. **Prefix-diffing**, for any template: for each assistant message *i*, render the conversation
   up to before it with the generation prompt, and up to after it. The message's span starts where
   the two renders part (so the generation prompt, given at inference, is excluded) and ends at the
   end of the second render, which must be a prefix of the full text. When it is not, the template
   is not prefix-stable for this conversation: that is reported, never guessed around.

The two are compared per supervised message. A marker span that starts earlier than the diffed one
only by (a tail of) the generation prompt is *agreement*: some training templates (Qwen2.5's,
gpt-oss's) put part of the prompt cue inside the markers; it is counted and reported, and the
labels follow the markers there, as TRL's do. Any other difference is a disagreement (an audit error).

Inside a message, each canonical step owns a *region*: from the end of the previous step's text to
the end of its own (the last step also owns the end-of-turn tokens). Policies mask whole regions:
reasoning out of the loss, a step's train flag off, a step with error labels under ``mask``.

Spans become token labels through the tokenizer's offset mapping, by the rule transformers uses:
a token is supervised when it overlaps a supervised span. Tokens that straddle a span boundary are
reported. ``SegmentTokenizer`` tokenizes text piecewise between added tokens (which split the text
before BPE runs), caching repeated pieces such as system prompts and tool schemas; a test checks it
equals whole-text tokenization.

>>> char_spans_to_token_mask([(0, 2), (2, 3), (3, 6)], [(1, 4)])
([1, 1, 1], [0, 2])
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import numpy as np

from training.render import normalize_messages

# --- small string helpers -----------------------------------------------------------------------

def common_prefix_len(a: str, b: str) -> int:
    """Length of the longest common prefix (C-speed comparisons, binary search on a mismatch)."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo], a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def merge_spans(spans) -> list[tuple[int, int]]:
    """Sorted, non-overlapping, non-empty spans."""
    out: list[list[int]] = []
    for s, e in sorted(spans):
        if e <= s:
            continue
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def subtract_spans(spans, holes) -> list[tuple[int, int]]:
    """``spans`` minus ``holes`` (both lists of ranges)."""
    holes = merge_spans(holes)
    out = []
    for s, e in merge_spans(spans):
        cur = s
        for hs, he in holes:
            if he <= cur or hs >= e:
                continue
            if hs > cur:
                out.append((cur, hs))
            cur = max(cur, he)
        if cur < e:
            out.append((cur, e))
    return out


def clip_spans(spans, lo: int, hi: int) -> list[tuple[int, int]]:
    return [(max(s, lo), min(e, hi)) for s, e in spans if min(e, hi) > max(s, lo)]


def span_chars(spans) -> int:
    return sum(e - s for s, e in merge_spans(spans))


# --- method 2: prefix-diffing -------------------------------------------------------------------

@dataclass
class DiffResult:
    """Spans of assistant messages found by prefix-diffing, in the full text's coordinates."""

    spans: dict[int, tuple[int, int]] = field(default_factory=dict)
    # Per message: the render before it, with the generation prompt (what a model sees at inference).
    prompts: dict[int, str] = field(default_factory=dict)
    # Messages whose renders are not prefixes of the full text: {message, at (char), why}.
    unstable: list[dict] = field(default_factory=list)


class PrefixRenders:
    """Memoised renders of prefixes of one conversation (shared by all samples cut from it)."""

    def __init__(self, renderer, messages: list[dict], tools: list[dict] | None):
        self.renderer, self.messages, self.tools = renderer, messages, tools
        self._normalized = normalize_messages(messages)
        self._cache: dict[tuple[int, bool], tuple[str, list | None]] = {}

    def get(self, n: int, add_generation_prompt: bool = False, markers: bool = False) -> tuple[str, list]:
        """Render of ``messages[:n]``; ``markers=True`` also returns the generation spans."""
        key = (n, add_generation_prompt)
        hit = self._cache.get(key)
        if hit is None or (markers and hit[1] is None):
            text, spans = self.renderer.render(self._normalized[:n], self.tools, add_generation_prompt,
                                               track=markers, normalized=True)
            hit = self._cache[key] = (text, spans if markers else None)
        return hit[0], hit[1] or []

    def generation_prompt(self) -> str | None:
        return self.renderer.generation_prompt()


def diff_spans(prefixes: PrefixRenders, text: str, assistant_indices: list[int]) -> DiffResult:
    """Locate each assistant message of ``text`` (= render of a prefix of the messages) by prefix-diffing.

    The message starts where the render before it (with the generation prompt) and the render
    ending with it part. It ends where that second render ends, when it is a prefix of ``text``.
    Some templates end a message differently when it is the last one (gpt-oss: ``<|return|>``, not
    ``<|end|>``); then the render ending with it *as the conversation continues* is used: the same
    prefix rendered with the generation prompt, minus that prompt. Anything else is instability.
    """
    out = DiffResult()
    for i in assistant_indices:
        before = prefixes.get(i, True)[0]
        after = prefixes.get(i + 1, False)[0]
        start = common_prefix_len(before, after)
        out.prompts[i] = before
        if not text.startswith(before[:start]):
            out.unstable.append({"message": i, "at": common_prefix_len(before, text),
                                 "why": "the text before this message changes when later messages follow"})
            continue
        if text.startswith(after):
            out.spans[i] = (start, len(after))
            continue
        end = _end_as_continued(prefixes, i, text)
        if end is not None and end > start:
            out.spans[i] = (start, end)
            continue
        out.unstable.append({"message": i, "at": common_prefix_len(after, text),
                             "why": "this message renders differently when later messages follow"})
    return out


def _end_as_continued(prefixes: PrefixRenders, i: int, text: str) -> int | None:
    prompt = prefixes.generation_prompt()
    if not prompt:
        return None
    continued = prefixes.get(i + 1, True)[0]
    if continued.endswith(prompt) and text.startswith(continued[: -len(prompt)]):
        return len(continued) - len(prompt)
    return None


# --- method 1: generation markers ----------------------------------------------------------------

def attribute_markers(blocks: list[tuple[int, int]], assistant_indices: list[int],
                      diff: DiffResult | None) -> tuple[dict[int, list[tuple[int, int]]], list[tuple[int, int]]]:
    """Assign each ``{% generation %}`` block to an assistant message.

    With diffed spans: a block belongs to the first assistant message whose diffed span ends at or
    after the block's end (a block wrapping a user message is thus compared with the next assistant
    message, and disagrees). Without them: by order, when there is one block per assistant message.
    Returns ``(per_message, unattributed)``.
    """
    blocks = [b for b in blocks if b[1] > b[0]]
    per: dict[int, list[tuple[int, int]]] = {i: [] for i in assistant_indices}
    if diff is not None and diff.spans and len(diff.spans) == len(assistant_indices):
        ends = [(diff.spans[i][1], i) for i in assistant_indices]
        stray = []
        for b in blocks:
            owner = next((i for end, i in ends if b[1] <= end), None)
            (per[owner] if owner is not None else stray).append(b)
        return per, stray
    if len(blocks) == len(assistant_indices):
        for b, i in zip(blocks, assistant_indices):
            per[i].append(b)
        return per, []
    return per, blocks


@dataclass
class CrossCheck:
    """The outcome of comparing the two methods on one sample."""

    spans: dict[int, list[tuple[int, int]]]  # per supervised message: the spans to train on
    method: str  # "both", "markers", "diff"
    agreed_chars: int = 0
    disagreements: list[dict] = field(default_factory=list)
    prompt_in_markers: list[dict] = field(default_factory=list)  # {message, chars}


def cross_check(text: str, supervised: list[int], markers: dict[int, list[tuple[int, int]]] | None,
                diff: DiffResult | None) -> CrossCheck:
    """Compare marker and diffed spans for the supervised messages; choose the spans to train on."""
    have_markers = markers is not None
    have_diff = diff is not None and all(i in diff.spans for i in supervised)
    if have_markers and not have_diff:
        return CrossCheck(spans={i: merge_spans(markers.get(i, [])) for i in supervised}, method="markers")
    if not have_markers:
        spans = {i: [diff.spans[i]] for i in supervised if diff is not None and i in diff.spans}
        return CrossCheck(spans=spans, method="diff")
    result = CrossCheck(spans={}, method="both")
    for i in supervised:
        m = merge_spans(markers.get(i, []))
        ds, de = diff.spans[i]
        extra = subtract_spans(m, [(ds, de)])
        missing = subtract_spans([(ds, de)], m)
        prompt_tail = [(s, e) for s, e in extra if e == ds and diff.prompts[i].endswith(text[s:e])]
        if prompt_tail and len(prompt_tail) == len(extra) and not missing:
            result.prompt_in_markers.append({"message": i, "chars": prompt_tail[0][1] - prompt_tail[0][0]})
            extra = []
        if extra or missing:
            result.disagreements.append({
                "message": i,
                "only_markers": [[s, e] for s, e in extra],
                "only_diff": [[s, e] for s, e in missing],
                "text": _snippet(text, (extra or missing)[0]),
            })
            # Train only on what both methods call the assistant's.
            result.spans[i] = subtract_spans(m, extra)
        else:
            result.spans[i] = m
            result.agreed_chars += de - ds
    return result


def _snippet(text: str, span: tuple[int, int], width: int = 60) -> str:
    s, e = span
    piece = text[s:e]
    return piece if len(piece) <= width else piece[: width // 2] + "…" + piece[-width // 2:]


# --- step regions inside a message ---------------------------------------------------------------

def step_regions(text: str, span: tuple[int, int], message: dict, steps: list) -> list[dict]:
    """Split one assistant message's span into regions owned by its canonical steps.

    ``steps`` are ``(step_index, Step)`` in the order they were put into the message (reasoning,
    then content, then calls). A step's region runs from the end of the previous step's text to the
    end of its own text, found by searching forward in the span; the last step also owns whatever
    follows (closing tags, end-of-turn token). A step whose text the template did not render gets an
    empty region and ``rendered: False``.
    """
    s0, e0 = span
    cursor = s0
    regions = []
    order = ([x for x in steps if x[1].kind == "think"] + [x for x in steps if x[1].kind == "answer"]
             + [x for x in steps if x[1].kind == "tool_call"])
    for si, step in order:
        end = _find_payload_end(text, cursor, e0, step)
        if end is None:
            regions.append({"step": si, "kind": step.kind, "start": cursor, "end": cursor, "rendered": False})
            continue
        regions.append({"step": si, "kind": step.kind, "start": cursor, "end": end, "rendered": True})
        cursor = end
    rendered = [r for r in regions if r["rendered"]]
    if rendered:
        rendered[-1]["end"] = e0
    elif regions:
        regions[-1].update(end=e0, rendered=True)
    return regions


def _find_payload_end(text: str, lo: int, hi: int, step) -> int | None:
    if step.kind in ("think", "answer"):
        needle = step.text.strip()
        if not needle:
            return lo
        p = text.find(needle, lo, hi)
        return None if p < 0 else p + len(needle)
    # A tool call: its name, then its arguments as the template serialises them.
    p = text.find(step.name, lo, hi) if step.name else lo
    if p < 0:
        return None
    after_name = p + len(step.name)
    for args in _argument_forms(step.arguments):
        q = text.find(args, after_name, hi)
        if q >= 0:
            return q + len(args)
    return after_name


def _argument_forms(arguments) -> list[str]:
    if isinstance(arguments, str):
        return [arguments]
    forms = [json.dumps(arguments, ensure_ascii=False), json.dumps(arguments, ensure_ascii=False, indent=4),
             json.dumps(arguments)]
    return list(dict.fromkeys(forms))


# --- spans -> tokens ------------------------------------------------------------------------------

def char_spans_to_token_mask(offsets, spans) -> tuple[list[int], list[int]]:
    """``(mask, straddling)``: 1 for tokens overlapping a span, and the indices of those that cross a span edge.

    ``offsets`` are ``(start, end)`` character offsets per token (in order); ``spans`` are merged
    character spans. The overlap rule is the one transformers uses for ``return_assistant_tokens_mask``.
    """
    spans = merge_spans(spans)
    n = len(offsets)
    if n == 0:
        return [], []
    if not spans:
        return [0] * n, []
    off = offsets if isinstance(offsets, np.ndarray) else np.asarray(offsets, dtype=np.int64).reshape(n, 2)
    ts, te = off[:, 0], off[:, 1]
    ss = np.asarray([s for s, _ in spans], dtype=np.int64)
    se = np.asarray([e for _, e in spans], dtype=np.int64)
    k = np.searchsorted(se, ts, side="right")  # first span ending after the token starts
    kk = np.minimum(k, len(spans) - 1)
    overlap = (k < len(spans)) & (ss[kk] < te) & (te > ts)
    inside = overlap & (ss[kk] <= ts) & (te <= se[kk])
    straddle = np.nonzero(overlap & ~inside)[0]
    return overlap.astype(np.int64).tolist(), straddle.tolist()


class SegmentTokenizer:
    """Tokenize with offsets, piece by piece between added tokens, caching repeated pieces.

    Added tokens (``<|im_start|>``, ``<tool_call>`` ...) are matched before normalisation and
    pre-tokenisation, so the text between two of them is tokenized independently of the rest. Long
    repeated pieces (a system prompt with its tool schemas) are then tokenized once. Falls back to
    whole-text tokenization when an added token has ``lstrip`` / ``rstrip`` / ``single_word`` set
    (those change the text around the match).
    """

    def __init__(self, tokenizer, max_cache: int = 200_000):
        self.tokenizer = tokenizer
        self.backend = tokenizer.backend_tokenizer
        self.max_cache = max_cache
        self.cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._specials: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        added = {}
        self.segmentable = True
        for tid, tok in getattr(tokenizer, "added_tokens_decoder", {}).items():
            if getattr(tok, "lstrip", False) or getattr(tok, "rstrip", False) or getattr(tok, "single_word", False):
                self.segmentable = False
            added[tok.content] = tid
        self.added = added
        alternatives = sorted(added, key=len, reverse=True)
        self.splitter = re.compile("|".join(re.escape(a) for a in alternatives)) if alternatives else None

    def encode(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """``(input_ids, offsets)`` for ``text`` without added special tokens (like ``apply_chat_template``).

        ``input_ids`` is an int64 array of length n, ``offsets`` an (n, 2) int64 array of character offsets.
        """
        if not self.segmentable or self.splitter is None:
            enc = self.backend.encode(text, add_special_tokens=False)
            return np.asarray(enc.ids, dtype=np.int64), np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
        pieces: list[tuple[int, str, bool]] = []
        pos = 0
        for m in self.splitter.finditer(text):
            if m.start() > pos:
                pieces.append((pos, text[pos:m.start()], False))
            pieces.append((m.start(), m.group(), True))
            pos = m.end()
        if pos < len(text):
            pieces.append((pos, text[pos:], False))
        cache = self.cache
        missing = list(dict.fromkeys(p for _, p, special in pieces if not special and p not in cache))
        if missing:
            if len(cache) + len(missing) > self.max_cache:
                cache.clear()
            for piece, enc in zip(missing, self.backend.encode_batch(missing, add_special_tokens=False)):
                cache[piece] = (np.asarray(enc.ids, dtype=np.int64),
                                np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2))
        id_parts, off_parts, shifts, lengths = [], [], [], []
        for start, piece, special in pieces:
            pids, poffs = self._special(piece) if special else cache[piece]
            id_parts.append(pids)
            off_parts.append(poffs)
            shifts.append(start)
            lengths.append(len(pids))
        if not id_parts:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 2), dtype=np.int64)
        offsets = np.concatenate(off_parts)
        offsets += np.repeat(np.asarray(shifts, dtype=np.int64), lengths)[:, None]
        return np.concatenate(id_parts), offsets

    def _special(self, piece: str) -> tuple[np.ndarray, np.ndarray]:
        hit = self._specials.get(piece)
        if hit is None:
            hit = self._specials[piece] = (np.asarray([self.added[piece]], dtype=np.int64),
                                           np.asarray([[0, len(piece)]], dtype=np.int64))
        return hit


@dataclass
class TokenLabels:
    input_ids: list[int]
    labels: list[int]
    assistant_masks: list[int]
    offsets: np.ndarray  # (n, 2)
    straddling: list[int]


def token_labels(tokenizer: SegmentTokenizer, text: str, spans) -> TokenLabels:
    """Tokenize ``text`` and label it: token ids where supervised, -100 elsewhere."""
    ids, offsets = tokenizer.encode(text)
    mask, straddling = char_spans_to_token_mask(offsets, spans)
    mask_arr = np.asarray(mask, dtype=bool)
    labels = np.where(mask_arr, ids, -100)
    return TokenLabels(ids.tolist(), labels.tolist(), mask, offsets, straddling)


