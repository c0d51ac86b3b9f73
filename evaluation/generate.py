"""Generate model outputs for evaluation items: local transformers or an OpenAI-compatible endpoint
(pure; no Django; torch and transformers load inside :class:`LocalGenerator` only).

Two generators with one method, ``generate([(messages, tools), ...]) -> [Generation]``:

- :class:`LocalGenerator`: a model folder (or a base model + LoRA adapter, loaded with peft and
  optionally merged), prompts rendered through the tokenizer's own chat template, generated in
  batches with left padding (prompts sorted by length so a batch pads little), greedy unless a
  temperature is set, ``max_new_tokens`` per output.
- :class:`EndpointGenerator`: ``POST {url}/chat/completions`` on vLLM, SGLang, TGI or any
  OpenAI-compatible server; requests run concurrently (``concurrency`` at a time), each with a
  timeout, retried with backoff on connection errors, timeouts, 408/409/429 and 5xx. A request
  that still fails is a :class:`Generation` with ``error`` set (the environment failed, not the
  model), never an exception. Every request goes out under an :class:`~evaluation.outbound.OutboundPolicy`
  (an allowlist; private addresses refused after resolution, the connect pinned to a checked
  address, no redirects); a refused or failed reply is reported by its status, never its body.

:func:`generate_items` runs items through a generator and, for items with a gold continuation
(``EvalItem.replay``), **replays** it: each call the model makes is answered with the gold result
of the matching call, and the model continues until it answers, calls something the gold turn
never called (``off_script``) or hits ``max_steps``.

>>> chat_completions_url("http://localhost:8000")
'http://localhost:8000/v1/chat/completions'
>>> chat_completions_url("https://api.example.com/v1/")
'https://api.example.com/v1/chat/completions'
"""

from __future__ import annotations

import json
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from evaluation import outbound
from evaluation.items import EvalItem
from evaluation.parse import ParsedOutput, parse_output, parsed_from_message
from evaluation.scoring import call_key
from jobs.runner_io import resolve_device

DEVICES = ("auto", "cpu", "cuda")
PARSERS = ("auto", "fallbacks")
RETRY_STATUSES = (408, 409, 429, 500, 502, 503, 504)


@dataclass
class GenerationSettings:
    """What a lead chooses on the launch form (also ``manage.py evaluate``'s options)."""

    max_new_tokens: int = 256
    batch_size: int = 8  # local generation: prompts per forward pass
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    max_steps: int = 4  # model turns per item when replaying gold tool results (1: no replay)
    concurrency: int = 8  # endpoint: requests in flight
    timeout: float = 60.0  # endpoint: seconds per request
    retries: int = 2  # endpoint: further tries after a failed request
    retry_backoff: float = 0.5  # endpoint: seconds before the first retry, doubling after each
    device: str = "auto"
    response_parser: str = "auto"  # auto: the family's response template (TRL's) where it has one
    template_kwargs: dict = field(default_factory=dict)  # e.g. {"enable_thinking": false}
    seed: int = 0

    @classmethod
    def from_dict(cls, d: dict | None) -> "GenerationSettings":
        """Settings from JSON; unknown keys are an error, values are coerced to the field's type.

        >>> GenerationSettings.from_dict({"max_new_tokens": "64"}).max_new_tokens
        64
        """
        d = dict(d or {})
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(unknown)}")
        base = asdict(cls())
        for key, value in d.items():
            typ = type(base[key])
            if typ is dict:
                if not isinstance(value, dict):
                    raise ValueError(f"{key}: expected an object")
                base[key] = value
                continue
            try:
                if isinstance(value, bool) or (typ is int and isinstance(value, float) and not value.is_integer()):
                    raise ValueError
                base[key] = typ(value)
            except (TypeError, ValueError):
                article = "an" if typ is int else "a"
                raise ValueError(f"{key}: expected {article} {typ.__name__}, got {value!r}") from None
        return cls(**base)

    def to_dict(self) -> dict:
        return asdict(self)

    def errors(self) -> dict[str, str]:
        """Problems by field name (empty when it can run)."""
        out: dict[str, str] = {}
        checks = [
            ("max_new_tokens", 1 <= self.max_new_tokens <= 131072, "Between 1 and 131072 tokens."),
            ("batch_size", 1 <= self.batch_size <= 1024, "Between 1 and 1024."),
            ("temperature", 0 <= self.temperature <= 5, "Between 0 (greedy) and 5."),
            ("top_p", 0 < self.top_p <= 1, "In (0, 1]."),
            ("max_steps", 1 <= self.max_steps <= 32, "Between 1 (no replay) and 32."),
            ("concurrency", 1 <= self.concurrency <= 256, "Between 1 and 256."),
            ("timeout", 0 < self.timeout <= 3600, "Between 0 and 3600 seconds."),
            ("retries", 0 <= self.retries <= 10, "Between 0 and 10."),
            ("retry_backoff", 0 <= self.retry_backoff <= 60, "Between 0 and 60 seconds."),
            ("device", self.device in DEVICES, f"One of: {', '.join(DEVICES)}."),
            ("response_parser", self.response_parser in PARSERS, f"One of: {', '.join(PARSERS)}."),
        ]
        for name, ok, message in checks:
            if not ok:
                out[name] = message
        return out


@dataclass
class Generation:
    """One model output. ``message``: the structured assistant message an endpoint returned (its
    ``tool_calls`` already parsed by the server); ``prompt_text``: what the model saw (the rendered
    chat template, or the request's messages as JSON); ``error``: the request failed."""

    text: str = ""
    message: dict | None = None
    prompt_text: str = ""
    error: str = ""
    seconds: float = 0.0
    new_tokens: int = 0


Conversation = tuple[list[dict], list[dict]]  # (messages, tools)


# --- local generation --------------------------------------------------------------------------

class LocalGenerator:
    """Batched greedy (or sampled) generation with transformers, left padding, from a local folder."""

    def __init__(self, model_path: str, settings: GenerationSettings, *, adapter: str = "", merge: bool = False,
                 trust_remote_code: bool = False):
        # Here, not at the top: only a worker generating locally needs them; the web process imports
        # this module for GenerationSettings (-X importtime: torch ~1.1 s, transformers ~0.6 s).
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.settings = settings
        self.torch = torch
        self.device = resolve_device(settings.device)
        tokenizer_dir = adapter if adapter and _has_tokenizer(adapter) else model_path
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, trust_remote_code=trust_remote_code)
        self.tokenizer.padding_side = "left"  # decoder-only: new tokens follow every prompt directly
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        dtype = torch.bfloat16 if self.device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype, trust_remote_code=trust_remote_code)
        if adapter:
            from peft import PeftModel  # heavy (~3.4 s): only for an adapter

            model = PeftModel.from_pretrained(model, adapter)
            if merge:
                model = model.merge_and_unload()
        self.model = model.to(self.device).eval()
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self.stop_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        self.pad_id = self.tokenizer.pad_token_id

    def render(self, messages: list[dict], tools: list[dict]) -> str:
        """The prompt text: the tokenizer's chat template with the generation prompt."""
        return self.tokenizer.apply_chat_template(messages, tools=tools or None, add_generation_prompt=True,
                                                  tokenize=False, **self.settings.template_kwargs)

    def generate(self, conversations: Sequence[Conversation], batch_size: int | None = None) -> list[Generation]:
        texts = [self.render(m, t) for m, t in conversations]
        lengths = [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]
        order = sorted(range(len(texts)), key=lambda i: lengths[i])
        size = batch_size or self.settings.batch_size
        out: list[Generation | None] = [None] * len(texts)
        for start in range(0, len(order), size):
            batch = order[start:start + size]
            t0 = time.perf_counter()
            outputs = self._generate_batch([texts[i] for i in batch])
            per = (time.perf_counter() - t0) / len(batch)
            for i, (text, n) in zip(batch, outputs):
                out[i] = Generation(text=text, prompt_text=texts[i], seconds=per, new_tokens=n)
        return out  # type: ignore[return-value]

    def _generate_batch(self, texts: list[str]) -> list[tuple[str, int]]:
        torch, s = self.torch, self.settings
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        kwargs: dict[str, Any] = {"max_new_tokens": s.max_new_tokens, "pad_token_id": self.pad_id}
        if s.temperature > 0:
            torch.manual_seed(s.seed)
            kwargs.update(do_sample=True, temperature=s.temperature, top_p=s.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with torch.inference_mode():
            generated = self.model.generate(**enc, **kwargs)
        new = generated[:, enc["input_ids"].shape[1]:].tolist()
        return [self._decode(row) for row in new]

    def _decode(self, ids: list[int]) -> tuple[str, int]:
        """Tokens up to and including the first stop token; special tokens kept (``<tool_call>`` is
        one in many vocabularies), padding dropped."""
        for k, t in enumerate(ids):
            if t in self.stop_ids:
                ids = ids[: k + 1]
                break
        else:
            while ids and ids[-1] == self.pad_id:
                ids = ids[:-1]
        return self.tokenizer.decode(ids, skip_special_tokens=False), len(ids)


def _has_tokenizer(folder: str) -> bool:
    return any((Path(folder) / n).is_file() for n in ("tokenizer.json", "tokenizer_config.json"))


# --- an OpenAI-compatible endpoint -------------------------------------------------------------

def chat_completions_url(url: str) -> str:
    """The chat-completions URL of a server given by its base URL (``/v1`` added when missing)."""
    url = url.strip().rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    if not url.endswith("/v1"):
        url += "/v1"
    return url + "/chat/completions"


def wire_messages(messages: list[dict]) -> list[dict]:
    """Messages as the OpenAI API takes them: tool-call arguments as JSON text, every call with an id
    (its tool message answering that id), reasoning fields dropped (not part of the API)."""
    out = []
    pending: list[str] = []
    n = 0
    for m in messages:
        m = {k: v for k, v in m.items() if k not in ("reasoning_content", "thinking", "reasoning")}
        if m.get("role") == "assistant" and m.get("tool_calls"):
            calls = []
            for c in m["tool_calls"]:
                fn = dict(c.get("function", c))
                if not isinstance(fn.get("arguments"), str):
                    fn["arguments"] = json.dumps(fn.get("arguments") or {}, ensure_ascii=False)
                n += 1
                cid = c.get("id") or f"call_{n}"
                pending.append(cid)
                calls.append({"id": cid, "type": "function", "function": {"name": fn.get("name", ""),
                                                                          "arguments": fn["arguments"]}})
            m["tool_calls"] = calls
            m["content"] = m.get("content") or None
        elif m.get("role") == "tool":
            cid = m.get("tool_call_id")
            if cid in pending:
                pending.remove(cid)
            elif pending:
                m["tool_call_id"] = pending.pop(0)
            if not isinstance(m.get("content"), str):
                m["content"] = json.dumps(m.get("content"), ensure_ascii=False)
        out.append(m)
    return out


class EndpointGenerator:
    """Concurrent chat-completion requests with retries and a per-request timeout, under ``policy``
    (the empty policy allows nothing: outbound requests are allowed, not assumed). A URL the
    policy does not list is :class:`~evaluation.outbound.OutboundRefused` here, before any request."""

    def __init__(self, url: str, model: str, settings: GenerationSettings, *, api_key: str = "",
                 policy: outbound.OutboundPolicy | None = None, sleep: Callable[[float], None] = time.sleep):
        self.url = chat_completions_url(url)
        self.model = model
        self.settings = settings
        self.api_key = api_key
        self.policy = policy or outbound.OutboundPolicy()
        self.policy.allow(self.url)
        self.sleep = sleep

    def generate(self, conversations: Sequence[Conversation], batch_size: int | None = None) -> list[Generation]:
        with ThreadPoolExecutor(max_workers=max(1, self.settings.concurrency)) as pool:
            return list(pool.map(lambda c: self.request(*c), conversations))

    def body(self, messages: list[dict], tools: list[dict]) -> dict:
        s = self.settings
        body: dict[str, Any] = {"model": self.model, "messages": wire_messages(messages),
                                "max_tokens": s.max_new_tokens, "temperature": s.temperature}
        if tools:
            body["tools"] = tools
        if s.top_p < 1:
            body["top_p"] = s.top_p
        if s.temperature > 0:
            body["seed"] = s.seed
        if s.template_kwargs:
            body["chat_template_kwargs"] = s.template_kwargs  # vLLM / SGLang read it; others ignore it
        return body

    def request(self, messages: list[dict], tools: list[dict]) -> Generation:
        body = self.body(messages, tools)
        data = json.dumps(body, ensure_ascii=False).encode()
        prompt_text = json.dumps({"messages": body["messages"], "tools": tools}, ensure_ascii=False, indent=1)
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        t0 = time.perf_counter()
        last, retry_after = "", None
        for attempt in range(self.settings.retries + 1):
            if attempt:
                self.sleep(self._backoff(attempt, retry_after))
            retry_after = None
            try:  # the host is resolved and its addresses checked again for every connection
                got = outbound.post(self.policy, self.url, data, headers, timeout=self.settings.timeout)
            except outbound.OutboundRefused as e:
                last = f"refused: {e}"
                break
            except TimeoutError:
                last = f"timed out after {self.settings.timeout:g} s"
                continue
            except outbound.BadReply as e:
                last = str(e)
                continue
            except OSError as e:  # refused, unreachable, not resolved: the system's words
                last = f"{type(e).__name__}: {e}"
                continue
            if not got.ok:  # the status only: the body of a refused reply is never read
                last, retry_after = outbound.describe_status(got.status), got.retry_after
                if got.status not in RETRY_STATUSES:
                    break
                continue
            try:
                reply = json.loads(got.body.decode("utf-8"))
            except ValueError:
                last = "the reply is not JSON"
                break
            try:
                message = reply["choices"][0]["message"]
            except (KeyError, IndexError, TypeError):
                last = "the reply has no choices[0].message"
                break
            usage = reply.get("usage") or {}
            return Generation(text=message_text(message), message=message, prompt_text=prompt_text,
                              seconds=time.perf_counter() - t0, new_tokens=int(usage.get("completion_tokens") or 0))
        tries = attempt + 1
        return Generation(prompt_text=prompt_text, seconds=time.perf_counter() - t0,
                          error=f"the request failed after {tries} tr{'y' if tries == 1 else 'ies'}: {last}")

    def _backoff(self, attempt: int, given: str | None) -> float:
        if given and given.strip().isdigit():  # the server said when
            return min(30.0, float(given))
        base = self.settings.retry_backoff * (2 ** (attempt - 1))
        return base * (0.5 + random.random() / 2)  # jitter: concurrent retries do not arrive together


def message_text(message: dict) -> str:
    """What an assistant message says, as text for the raw-output view: reasoning, content, and its
    structured tool calls written as ``<tool_call>`` JSON."""
    parts = []
    for key in ("reasoning_content", "reasoning"):
        if isinstance(message.get(key), str) and message[key].strip():
            parts.append(f"<think>\n{message[key].strip()}\n</think>")
            break
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(b.get("text", "") for b in content if isinstance(b, dict))
    if content:
        parts.append(str(content))
    for c in message.get("tool_calls") or []:
        fn = c.get("function", c) if isinstance(c, dict) else {}
        args = fn.get("arguments")
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except ValueError:
                pass
        parts.append("<tool_call>\n" + json.dumps({"name": fn.get("name"), "arguments": args}, ensure_ascii=False)
                     + "\n</tool_call>")
    return "\n".join(parts)


# --- parsing what came back ----------------------------------------------------------------------

def parse_generation(g: Generation, tools: list[dict] | None = None, response_template: dict | None = None,
                     *, prefix: str = "") -> ParsedOutput:
    """A :class:`Generation` read: an endpoint's structured message as it is, text through the
    family's response template (when given) with the common formats as fallbacks."""
    if g.message is not None:
        if g.message.get("tool_calls"):
            return parsed_from_message(g.message, tools)
        content = g.message.get("content") or ""
        parsed = parse_output(content if isinstance(content, str) else g.text, response_template, tools=tools)
        reasoning = g.message.get("reasoning_content") or g.message.get("reasoning")
        if isinstance(reasoning, str) and reasoning.strip() and not parsed.reasoning:
            parsed.reasoning = reasoning.strip()
        return parsed
    return parse_output(g.text, response_template, prefix=prefix, tools=tools)


# --- items, with replay ------------------------------------------------------------------------

@dataclass
class ItemOutput:
    """What the model did with one item: its first output (scored against the item's reference) and,
    when replayed, the episode that followed."""

    item_id: str
    prompt_text: str = ""
    raw: str = ""
    parsed: dict = field(default_factory=dict)
    error: str = ""
    seconds: float = 0.0
    new_tokens: int = 0
    episode: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class _Episode:
    """One item being replayed: the conversation so far and the gold results not yet fed."""

    def __init__(self, item: EvalItem):
        self.item = item
        self.messages = list(item.messages)
        self.pool = [dict(r) for r in item.replay]
        self.known: dict[tuple, dict] = {}
        self.seen = {call_key(c) for c in (item.reference.get("context_calls") or [])}
        self.steps: list[dict] = []
        self.n_calls = 0
        self.n_redundant = 0
        self.ended = ""
        self.why = ""

    def take(self, g: Generation, parsed: ParsedOutput, max_steps: int) -> None:
        """Record one output; feed the gold results of its calls, or end the episode."""
        step = {"raw": g.text, "parsed": parsed.to_dict(), "fed": []}
        self.steps.append(step)
        if g.error:
            self.ended, self.why = "error", g.error
            return
        for c in parsed.tool_calls:
            self.n_calls += 1
            k = call_key(c)
            if k in self.seen:
                self.n_redundant += 1
            self.seen.add(k)
        if not parsed.call_attempted:
            self.ended = "answered"
            return
        if not parsed.tool_calls:
            self.ended, self.why = "format_error", "the call could not be read"
            return
        fed = []
        for c in parsed.tool_calls:
            result = self._result_for(c)
            if result is None:
                self.ended, self.why = "off_script", f"the gold turn never calls {c.name}({_short(c.arguments)})"
                return
            fed.append(result)
        step["fed"] = fed
        if len(self.steps) >= max_steps:
            self.ended, self.why = "step_limit", f"still calling tools after {max_steps} steps"
            return
        calls = [{"id": f"replay_{len(self.steps)}_{i}", "type": "function",
                  "function": {"name": c.name, "arguments": c.arguments}} for i, c in enumerate(parsed.tool_calls)]
        msg: dict[str, Any] = {"role": "assistant", "content": parsed.answer or "", "tool_calls": calls}
        if parsed.reasoning:
            msg["reasoning_content"] = parsed.reasoning
        self.messages = self.messages + [msg] + [
            {"role": "tool", "tool_call_id": call["id"], "name": r["name"], "content": r["text"]}
            for call, r in zip(calls, fed)]

    def _result_for(self, call) -> dict | None:
        k = call_key(call)
        if k in self.known:  # a repeat: the same result again
            return self.known[k]
        match = next((r for r in self.pool if call_key(r) == k), None)
        if match is None:
            match = next((r for r in self.pool if r["name"] == call.name), None)
        if match is None:
            return None
        self.pool.remove(match)
        self.known[k] = match
        return match

    def summary(self) -> dict:
        return {"steps": self.steps, "ended": self.ended, "why": self.why, "n_calls": self.n_calls,
                "n_redundant": self.n_redundant, "n_gold_calls": len(self.item.replay)}


def _short(args: Any) -> str:
    text = json.dumps(args, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


Parser = Callable[[Generation, EvalItem], ParsedOutput]


def generate_items(items: Sequence[EvalItem], generator, settings: GenerationSettings,
                   parse: Parser | None = None) -> list[ItemOutput]:
    """Generate for every item (one batch through ``generator``), then replay the items whose first
    output called a tool and that have a gold continuation, a batch per step, up to ``max_steps``."""
    parse = parse or (lambda g, item: parse_generation(g, item.tools, prefix=g.prompt_text))
    if not items:  # (a tokenizer fails on an empty batch)
        return []
    gens = generator.generate([(it.messages, it.tools) for it in items])
    outputs = []
    episodes: list[tuple[ItemOutput, _Episode]] = []
    for it, g in zip(items, gens):
        parsed = parse(g, it)
        out = ItemOutput(item_id=it.id, prompt_text=g.prompt_text, raw=g.text, parsed=parsed.to_dict(),
                         error=g.error, seconds=g.seconds, new_tokens=g.new_tokens)
        outputs.append(out)
        if settings.max_steps > 1 and it.replay and not g.error and parsed.call_attempted:
            ep = _Episode(it)
            ep.take(g, parsed, settings.max_steps)
            episodes.append((out, ep))
    active = [(o, e) for o, e in episodes if not e.ended]
    while active:
        gens = generator.generate([(e.messages, e.item.tools) for _, e in active])
        for (out, ep), g in zip(active, gens):
            ep.take(g, parse(g, ep.item), settings.max_steps)
            out.seconds += g.seconds
            out.new_tokens += g.new_tokens
        active = [(o, e) for o, e in active if not e.ended]
    for out, ep in episodes:
        out.episode = ep.summary()
    return outputs
