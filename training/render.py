"""Canonical trajectories -> the target model's messages, rendered through its chat template (pure).

Two layers:

- ``to_conversation(traj, template)``: the messages a chat template reads, in the shapes TRL's
  trainers take: assistant messages with the reasoning in the field that template reads
  (``reasoning_content``, ``thinking``, or inline ``<think>`` in the content), ``tool_calls`` with
  **dict** arguments, ``tool`` messages with ``tool_call_id`` / ``name``, and ``tools`` as OpenAI
  function specs. The think / call / result / answer steps of a turn become the message sequence the
  family expects: a turn "think, call, result, think, answer" is
  ``assistant(reasoning, tool_calls), tool, assistant(reasoning, content)``. Each message remembers
  which canonical steps it came from (``origins``), so masks and the audit can speak of steps.
- ``Renderer``: renders messages to text with transformers' chat-template semantics (the same Jinja
  environment options, filters, ``{% generation %}`` tracking and message normalisation as
  ``tokenizer.apply_chat_template(..., tokenize=False)``), returning the generation spans too. Templates
  that ship with an installed package render unsandboxed with a memoised ``tojson`` (rendering every
  prefix of a conversation is the cost of prefix-diffing); any other template goes through
  transformers' own sandboxed ``render_jinja_template``. Tests check both give identical text.

The end-to-end entry point for the Django side is ``training.split.render_sample(traj, template, tokenizer, settings)``
(the pipeline of steps lives there and builds on this module).

>>> from annotate.trajectory import Trajectory, normalize_tool
>>> from training.chat_templates import get_template
>>> t = Trajectory.from_dict({"turns": [{"user": "2*3?", "steps": [
...     {"kind": "think", "text": "multiply"},
...     {"kind": "tool_call", "name": "mul", "arguments": {"a": 2, "b": 3}, "call_id": "c1"},
...     {"kind": "tool_result", "name": "mul", "call_id": "c1", "text": "6"},
...     {"kind": "answer", "text": "6"}]}]})
>>> conv = to_conversation(t, get_template("qwen3_training"))
>>> [(m["role"], sorted(m)) for m in conv.messages][1:]
[('assistant', ['content', 'reasoning_content', 'role', 'tool_calls']), ('tool', ['content', 'name', 'role', 'tool_call_id']), ('assistant', ['content', 'role'])]
>>> conv.messages[1]["tool_calls"][0]["function"]["arguments"]
{'a': 2, 'b': 3}
"""

from __future__ import annotations

import hashlib
import json
import re
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

import jinja2
import jinja2.ext
from jinja2.ext import Extension

from annotate.trajectory import Trajectory, normalize_tool
from training.chat_templates import ChatTemplate

STRATEGIES = ("auto", "conversation", "turn")
ERROR_POLICIES = ("drop", "truncate", "mask")
# Labels that blame the environment, not the model: they never make a step "erroneous".
NOT_MODEL_ERRORS = ("tool_execution_error",)


# --- settings ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class RenderSettings:
    """How a dataset is rendered. Part of a snapshot's identity (see ``settings_key``)."""

    strategy: str = "auto"  # auto | conversation | turn
    reasoning_loss: bool = True  # reasoning text in the loss, or context only
    error_policy: str = "mask"  # drop | truncate | mask: what a step with error labels does
    max_length: int | None = None  # tokens; longer samples are cut (keep the start), and audited
    tokenized: bool = False  # also emit input_ids / labels / assistant_masks
    template_kwargs: tuple[tuple[str, Any], ...] = ()  # extra template variables, e.g. (("date_string", "26 Jul 2024"),)

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}")
        if self.error_policy not in ERROR_POLICIES:
            raise ValueError(f"error_policy must be one of {', '.join(ERROR_POLICIES)}")
        if self.max_length is not None and self.max_length < 1:
            raise ValueError("max_length must be positive")

    @property
    def kwargs(self) -> dict:
        return dict(self.template_kwargs)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["template_kwargs"] = self.kwargs
        return d


def settings_key(template: ChatTemplate, tokenizer, settings: RenderSettings) -> str:
    """A hash of everything that changes rendered output except the trajectory itself.

    Cache rendered samples under ``(trajectory revision, settings_key)``.
    """
    payload = {"template": template.sha, "tokenizer": tokenizer_fingerprint(tokenizer),
               "settings": settings.to_dict(), "version": RENDER_VERSION}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


RENDER_VERSION = 1  # bump when rendering code changes its output


def tokenizer_fingerprint(tokenizer) -> str:
    """Identify a tokenizer by its vocabulary and added tokens (not by its folder name)."""
    if tokenizer is None:
        return "none"
    cached = getattr(tokenizer, "_studio_fingerprint", None)
    if cached:
        return cached
    backend = getattr(tokenizer, "backend_tokenizer", None)
    blob = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    fp = hashlib.sha256(blob.encode()).hexdigest()[:16]
    try:
        tokenizer._studio_fingerprint = fp
    except AttributeError:  # pragma: no cover - exotic tokenizer classes
        pass
    return fp


# --- canonical -> model messages ---------------------------------------------------------------

@dataclass
class Conversation:
    """The model's messages for one trajectory, with where each message came from."""

    messages: list[dict]
    tools: list[dict]
    # One per message: {"role", "turn" (index or None for system), "steps": [step indices in that turn]}
    origins: list[dict] = field(default_factory=list)
    # Canonical steps the template cannot show (e.g. reasoning for a template without a reasoning field).
    not_rendered: list[dict] = field(default_factory=list)

    def turn_ranges(self) -> list[tuple[int, int, int]]:
        """``(turn, first_message, end_message)`` per turn: the user message and its assistant/tool messages."""
        out: list[tuple[int, int, int]] = []
        for i, o in enumerate(self.origins):
            if o["turn"] is None:
                continue
            if out and out[-1][0] == o["turn"]:
                out[-1] = (o["turn"], out[-1][1], i + 1)
            else:
                out.append((o["turn"], i, i + 1))
        return out


def tools_to_openai(tools: list[dict]) -> list[dict]:
    """Canonical flat tool specs -> OpenAI ``{"type": "function", "function": {...}}`` with dict parameters.

    Already-nested OpenAI specs are accepted too.
    """
    tools = [normalize_tool(t) for t in tools]
    return [{"type": "function", "function": {"name": t["name"], "description": t.get("description") or "",
                                              "parameters": t.get("parameters") or {"type": "object", "properties": {}}}}
            for t in tools]


def to_conversation(traj: Trajectory, template: ChatTemplate) -> Conversation:
    """Canonical trajectory -> the messages ``template``'s family reads (see the module docstring)."""
    conv = Conversation(messages=[], tools=tools_to_openai(traj.tools))
    if traj.system:
        conv.messages.append({"role": "system", "content": traj.system})
        conv.origins.append({"role": "system", "turn": None, "steps": []})
    for ti, turn in enumerate(traj.turns):
        conv.messages.append({"role": "user", "content": turn.user})
        conv.origins.append({"role": "user", "turn": ti, "steps": []})
        _turn_messages(conv, traj, ti, template)
    return conv


class _Pending:
    """An assistant message being assembled from consecutive steps."""

    def __init__(self):
        self.reasoning: list[str] = []
        self.content: list[str] = []
        self.calls: list[dict] = []
        self.steps: list[int] = []


def _turn_messages(conv: Conversation, traj: Trajectory, ti: int, template: ChatTemplate) -> None:
    pending: _Pending | None = None

    def flush():
        nonlocal pending
        if pending is not None and pending.steps:
            conv.messages.append(_assistant_message(pending, template))
            conv.origins.append({"role": "assistant", "turn": ti, "steps": list(pending.steps)})
        pending = None

    for si, step in enumerate(traj.turns[ti].steps):
        if step.kind == "tool_result":
            flush()
            conv.messages.append({"role": "tool", "tool_call_id": step.call_id, "name": step.name,
                                  "content": step.text})
            conv.origins.append({"role": "tool", "turn": ti, "steps": [si]})
            continue
        if pending is None:
            pending = _Pending()
        if step.kind == "think":
            if template.reasoning_field is None:
                conv.not_rendered.append({"turn": ti, "step": si, "kind": "think",
                                          "why": "the template has no place for reasoning"})
                continue
            if pending.content or pending.calls:  # reasoning opens a message
                flush()
                pending = _Pending()
            pending.reasoning.append(step.text)
        elif step.kind == "answer":
            if pending.calls or pending.content:  # text after calls (or a second text) is a new message
                flush()
                pending = _Pending()
            pending.content.append(step.text)
        elif step.kind == "tool_call":
            if (pending.calls and template.one_call_per_message) or (
                    pending.content and not template.content_with_calls):
                flush()
                pending = _Pending()
            pending.calls.append({"id": step.call_id, "type": "function",
                                  "function": {"name": step.name, "arguments": step.arguments}})
        pending.steps.append(si)
    flush()


def _assistant_message(p: _Pending, template: ChatTemplate) -> dict:
    msg: dict[str, Any] = {"role": "assistant"}
    content = "\n\n".join(p.content)
    reasoning = "\n\n".join(p.reasoning)
    where = template.reasoning_field
    if p.reasoning and where == "inline_think":
        content = f"<think>\n{reasoning}\n</think>\n\n{content}"
    elif p.reasoning and where is not None:
        msg[where] = reasoning
    msg["content"] = content
    if p.calls:
        msg["tool_calls"] = p.calls
    return msg


# --- rendering ---------------------------------------------------------------------------------

_REASONING_ALIASES = ("reasoning_content", "thinking", "reasoning")


def normalize_messages(messages: list[dict]) -> list[dict]:
    """What transformers does before rendering: drop ``None`` values, alias the reasoning fields."""
    out = []
    for m in messages:
        m = {k: v for k, v in m.items() if v is not None}
        reasoning = next((m[k] for k in _REASONING_ALIASES if m.get(k) is not None), None)
        if reasoning is not None:
            m = {"thinking": reasoning, **m, "reasoning_content": reasoning}
        out.append(m)
    return out


class Renderer:
    """Render messages through one chat template, with transformers' semantics.

    ``render`` returns ``(text, generation_spans)``; the spans are the character ranges the
    template's ``{% generation %}`` blocks produced (empty when it has none).
    """

    def __init__(self, template: ChatTemplate, special_tokens: dict | None = None,
                 template_kwargs: dict | None = None, fast: bool | None = None):
        self.template = template
        self.variables = {**(special_tokens or {}), **(template_kwargs or {})}
        self.fast = template.trusted if fast is None else fast
        self._json_memo: dict[int, tuple[Any, str]] = {}
        self._generation_prompt: str | None = "unset"
        self.markers_text = template.markers_text
        self._compiled = _compile(self.markers_text or template.text, self._tojson) if self.fast else None
        # Prefix renders need no span tracking: the same template without its markers renders the
        # same text, minus the bookkeeping.
        self._plain = _compile(GENERATION_TAGS_RE.sub("", template.text), self._tojson) if self.fast else None

    @classmethod
    def for_tokenizer(cls, template: ChatTemplate, tokenizer, template_kwargs: dict | None = None,
                      fast: bool | None = None) -> "Renderer":
        special = dict(getattr(tokenizer, "special_tokens_map", {}) or {}) if tokenizer is not None else {}
        return cls(template, special, template_kwargs, fast)

    def reset(self) -> None:
        """Forget memoised JSON (call between trajectories)."""
        self._json_memo.clear()

    def render(self, messages: list[dict], tools: list[dict] | None = None, add_generation_prompt: bool = False,
               track: bool = True, normalized: bool = False) -> tuple[str, list[tuple[int, int]]]:
        """``(text, generation_spans)``. ``track=False`` skips the span bookkeeping (prefix renders);
        ``normalized=True`` says the messages already went through ``normalize_messages``."""
        if not self.fast:
            return self._render_transformers(messages, tools, add_generation_prompt)
        if not normalized:
            messages = normalize_messages(messages)
        if not track:
            return self._plain.render(messages=messages, tools=tools or None, documents=None,
                                      add_generation_prompt=add_generation_prompt, **self.variables), []
        compiled = self._compiled
        blocks: list[str] = []
        spans: list[tuple[int, int]] = []
        state = _Tracking(blocks, spans)
        token = _TRACKING.set(state)
        try:
            for block in compiled.generate(messages=messages, tools=tools or None, documents=None,
                                           add_generation_prompt=add_generation_prompt, **self.variables):
                blocks.append(block)
                state.length += len(block)
        finally:
            _TRACKING.reset(token)
        return "".join(blocks), spans

    def generation_prompt(self) -> str | None:
        """What ``add_generation_prompt=True`` appends after a user message (None unless a pure suffix)."""
        if self._generation_prompt == "unset":
            probe = [{"role": "user", "content": "probe"}]
            try:
                plain = self.render(probe, None, False, track=False)[0]
                prompted = self.render(probe, None, True, track=False)[0]
            except Exception:  # a template that cannot render a lone user message
                plain = prompted = ""
            ok = prompted.startswith(plain) and prompted != plain
            self._generation_prompt = prompted[len(plain):] if ok else None
        return self._generation_prompt

    def _render_transformers(self, messages, tools, add_generation_prompt):
        # The reference path: transformers' own sandboxed renderer, for templates we did not ship.
        # Imported here, not at the top: transformers is heavy, and the web process renders previews.
        from transformers.utils.chat_template_utils import render_jinja_template

        texts, indices = render_jinja_template(
            conversations=[[dict(m) for m in messages]], tools=tools or None,
            chat_template=self.markers_text or self.template.text,
            return_assistant_tokens_mask=self.markers_text is not None,
            add_generation_prompt=add_generation_prompt, **self.variables)
        return texts[0], [tuple(s) for s in (indices[0] if indices else [])]

    def _tojson(self, x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        # Tool schemas are serialised again in every prefix render; they do not change within a
        # trajectory, so remember them by identity (the memo holds the object, so ids stay unique).
        if isinstance(x, (dict, list)):
            key = (id(x), ensure_ascii, indent, separators, sort_keys)
            hit = self._json_memo.get(key)
            if hit is not None and hit[0] is x:
                return hit[1]
            s = json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
            self._json_memo[key] = (x, s)
            return s
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


class _Tracking:
    def __init__(self, blocks, spans):
        self.blocks, self.spans, self.length = blocks, spans, 0


_TRACKING: ContextVar = ContextVar("studio_generation_tracking", default=None)
GENERATION_TAGS_RE = re.compile(r"\{%-?\s*(?:end)?generation\s*-?%\}")
_CURRENT_TOJSON: ContextVar = ContextVar("studio_tojson", default=None)


@lru_cache(maxsize=64)
def _environment():
    """A Jinja environment with the options, filters and globals transformers gives chat templates."""
    class GenerationTracker(Extension):
        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_track"), [], [], body).set_lineno(lineno)

        def _track(self, caller):
            rv = caller()
            tracking = _TRACKING.get()
            if tracking is not None:
                tracking.spans.append((tracking.length, tracking.length + len(rv)))
            return rv

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return _CURRENT_TOJSON.get()(x, ensure_ascii, indent, separators, sort_keys)

    dict_attributes = frozenset(dir(dict))

    class Env(jinja2.Environment):
        def getattr(self, obj, attribute):
            # ``message.role`` on a plain dict: Jinja tries the attribute first and pays for an
            # AttributeError on every access. Look the key up first unless the name is a dict
            # method (``message.items`` still means the method, as in Jinja).
            if type(obj) is dict and attribute not in dict_attributes:
                try:
                    return obj[attribute]
                except KeyError:
                    return self.undefined(obj=obj, name=attribute)
            return super().getattr(obj, attribute)

    env = Env(trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTracker, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    env.globals["dict"] = dict
    env.globals["namespace"] = jinja2.utils.Namespace
    return env


class _BoundTemplate:
    """A compiled template whose ``tojson`` filter calls its renderer's memoising serialiser."""

    def __init__(self, compiled, tojson):
        self.compiled = compiled
        self.tojson = tojson

    def generate(self, **kwargs):
        token = _CURRENT_TOJSON.set(self.tojson)
        try:
            yield from self.compiled.generate(**kwargs)
        finally:
            _CURRENT_TOJSON.reset(token)

    def render(self, **kwargs) -> str:
        token = _CURRENT_TOJSON.set(self.tojson)
        try:
            return self.compiled.render(**kwargs)
        finally:
            _CURRENT_TOJSON.reset(token)


@lru_cache(maxsize=64)
def _compile_text(text: str):
    return _environment().from_string(text)


def _compile(text: str, tojson) -> _BoundTemplate:
    return _BoundTemplate(_compile_text(text), tojson)
