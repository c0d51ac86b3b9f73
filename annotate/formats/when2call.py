"""When2Call (NVIDIA/When2Call, ``nvidia/When2Call`` on the Hub): when (not) to call a tool (pure; no Django).

Three record shapes, each registered as a format:

- ``when2call`` — the test questions (``when2call_test_mcq.jsonl``, ``when2call_test_llm_judge.jsonl``):
  ``question``, ``answers`` with one response per kind (``direct``, ``tool_call``,
  ``request_for_info``, ``cannot_answer``), ``correct_answer`` naming the kind, ``tools`` as a list
  of JSON strings, and ``uuid``, ``source``, ``source_id``, ``target_tool``, ``orig_question``,
  ``orig_tools``, ``held_out_param``. As a trajectory: the question, then the correct behaviour as
  the assistant's steps (the ``tool_call`` answer, a JSON string, becomes a tool call; the others an
  answer), the case type from the kind (direct → no_tool, tool_call → tool_required,
  request_for_info → clarification, cannot_answer → tool_unavailable), the gold in
  ``meta.reference`` (``correct_answer``, ``target_tool``) and every other value in ``meta.extra``
  (all four answers included). ``held_out_param`` is also ``meta.extra.missing_args``, what a
  clarifying question must ask for when the trajectory is evaluated. As pairs (``pairs import``):
  the correct answer against each of the three wrong ones.
- ``when2call_sft`` — SFT rows: ``tools`` and ``messages`` whose last (assistant) ``content`` writes
  calls as ``<TOOLCALL>[{"name": ..., "arguments": {...}}]</TOOLCALL>``.
- ``when2call_pref`` — preference rows: ``tools``, ``messages`` (the prompt), ``chosen_response`` and
  ``rejected_response`` (assistant messages). As a trajectory: the prompt and the chosen response
  (the rejected one kept in ``meta.extra``); as a pair (``pairs import``): chosen against rejected.

A wrong or rejected response may be wrong in any way (a tool that is not in the list, ``<TOOLCALL>``
text that is not JSON): it is kept as written, and its problems become labels on its steps.

>>> t = read_mcq({"uuid": "q1", "question": "Weather in Oslo?", "correct_answer": "tool_call",
...     "answers": {"direct": "Sunny.", "tool_call": '{"name": "get_weather", "arguments": {"city": "Oslo"}}',
...                 "request_for_info": "Which city?", "cannot_answer": "I can't."},
...     "tools": ['{"name": "get_weather", "parameters": {"type": "dict", "properties": {"city": {"type": "string"}}}}']})
>>> [(s.kind, s.name, s.arguments) for s in t.turns[0].steps], t.meta.case_types, t.meta.external_id
([('tool_call', 'get_weather', {'city': 'Oslo'})], ['tool_required'], 'q1')
>>> [(p.rejected[0].kind, p.rejected[0].labels) for p in mcq_pairs(_EXAMPLE)]  # no tools: the call is made up
[('answer', []), ('tool_call', ['hallucinated_tool']), ('answer', [])]
"""

from __future__ import annotations

import json
import re
from typing import Any

from annotate.formats.common import (
    loads, TrajectoryBuilder, make_meta, meta_field, require_dict, require_list, set_meta, text_of, tools_field, type_name,
)
from annotate.formats import Format, register
from annotate.trajectory import SchemaError, Step, Trajectory
from annotate.pairs.candidates import pairs_from_candidates
from annotate.pairs.core import Pair, PairError, call_or_words, guess_category, label_rejected, pair_errors

KINDS = ("direct", "tool_call", "request_for_info", "cannot_answer")
CASE_TYPES = {"direct": "no_tool", "tool_call": "tool_required", "request_for_info": "clarification",
              "cannot_answer": "tool_unavailable"}
# The candidate types of ``annotate.pairs`` (they choose the pair category).
CANDIDATE_TYPES = {"direct": "direct", "tool_call": "tool_call", "request_for_info": "clarify",
                   "cannot_answer": "refusal"}
TOOLCALL = re.compile(r"<TOOLCALL>(.*?)</TOOLCALL>", re.S)
ID_KEYS = ("uuid", "id")


# Detection -----------------------------------------------------------------------------------------

def is_mcq(r: dict) -> bool:
    return "correct_answer" in r and "answers" in r and "question" in r


def is_pref(r: dict) -> bool:
    return "chosen_response" in r and "rejected_response" in r


def is_sft(r: dict) -> bool:
    """``tools`` and ``messages`` whose last message, the assistant's response, writes ``<TOOLCALL>``
    (When2Call's SFT rows are one question and its response; those that answer in words read as
    plain OpenAI messages). Only the last message is looked at: this runs for every messages record."""
    msgs = r.get("messages")
    if type(msgs) is not list or not msgs or "tools" not in r:
        return False
    m = msgs[-1]
    return type(m) is dict and type(m.get("content")) is str and "<TOOLCALL>" in m["content"] \
        and m.get("role") == "assistant"


# Shared pieces ------------------------------------------------------------------------------------

def read_tools(value: Any, where: str) -> list[dict]:
    """A tool list whose entries may be JSON strings (the test files) or objects (the train files)."""
    if isinstance(value, list):
        parsed = []
        for i, t in enumerate(value):
            if isinstance(t, str):
                try:
                    t = loads(t)
                except json.JSONDecodeError as e:
                    raise SchemaError(f"a tool written as text must be JSON ({e.msg} at character {e.pos})",
                                      f"{where}[{i}]") from None
            parsed.append(t)
        value = parsed
    return tools_field(value, where)


def _external_id(record: dict) -> Any:
    return next((record[k] for k in ID_KEYS if record.get(k) not in (None, "")), None)


def _id_key(record: dict) -> str | None:
    """The key whose value became the external id and needs no other place: a string id (any other
    value is also kept as it is in ``meta.extra``)."""
    return next((k for k in ID_KEYS if record.get(k) not in (None, "") and type(record[k]) is str), None)


def _calls(value: Any, where: str) -> list[tuple[str, Any, dict]]:
    """``[(name, arguments, extra)]`` from a call list / call object / their JSON text."""
    if isinstance(value, str):
        try:
            value = loads(value)
        except json.JSONDecodeError as e:
            raise SchemaError(f"the tool call is not valid JSON ({e.msg} at character {e.pos})", where) from None
    if isinstance(value, dict):
        value = [value]
        single = True
    else:
        single = False
    if not isinstance(value, list) or not value:
        raise SchemaError(f"must be a tool call ({{\"name\", \"arguments\"}}) or a list of them, got "
                          f"{type_name(value)}", where)
    out = []
    for i, c in enumerate(value):
        at = where if single else f"{where}[{i}]"
        if not isinstance(c, dict):
            raise SchemaError(f"a tool call must be an object, got {type_name(c)}", at)
        name = c.get("name")
        if not isinstance(name, str) or not name:
            raise SchemaError("a tool call needs a non-empty string name", f"{at}.name")
        args = c.get("arguments", {})
        if isinstance(args, str):
            try:
                args = loads(args) if args.strip() else {}
            except json.JSONDecodeError as e:
                raise SchemaError(f"arguments are not valid JSON ({e.msg} at character {e.pos})",
                                  f"{at}.arguments") from None
        out.append((name, args, {k: v for k, v in c.items() if k not in ("name", "arguments")}))
    return out


def response_pieces(content: Any, where: str) -> list[tuple]:
    """An assistant ``content`` as ``("think", text)`` / ``("call", name, arguments, extra)`` /
    ``("answer", text)`` pieces: text before ``<TOOLCALL>`` is the reasoning, the block's calls
    follow; a content without a block is the answer. Raises SchemaError naming ``where``.
    """
    text = text_of(content, where)
    blocks = list(TOOLCALL.finditer(text))
    if not blocks:
        if "<TOOLCALL>" in text:
            raise SchemaError("<TOOLCALL> is not closed by </TOOLCALL>", where)
        return [("answer", text)]
    pieces: list[tuple] = []
    pos = 0
    for m in blocks:
        between = text[pos:m.start()]
        if between.strip():
            pieces.append(("think", between.strip()))
        for name, args, extra in _calls(m.group(1), where):
            pieces.append(("call", name, args, extra))
        pos = m.end()
    if text[pos:].strip():
        raise SchemaError("text after </TOOLCALL> has no place in a tool-call message", where)
    return pieces


def response_steps(content: Any, where: str, *, lenient: bool = False, first_id: int = 1) -> list[Step]:
    """Canonical steps for one assistant response (call ids ``call_<n>`` from ``first_id``).

    ``lenient`` (a rejected or wrong response): content that cannot be read as written is kept as
    an answer whose text is the content, labelled ``format_error``.
    """
    try:
        pieces = response_pieces(content, where)
    except SchemaError:
        if not lenient:
            raise
        raw = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
        return [Step("answer", raw, labels=["format_error"])]
    steps = []
    n = first_id
    for p in pieces:
        if p[0] == "call":
            steps.append(Step("tool_call", name=p[1], arguments=p[2], call_id=f"call_{n}", extra=p[3]))
            n += 1
        else:
            steps.append(Step(p[0], p[1]))
    return steps


def _feed(b: TrajectoryBuilder, pieces: list[tuple], where: str, extra: dict | None) -> None:
    for i, p in enumerate(pieces):
        ex = extra if i == 0 else None
        if p[0] == "think":
            b.think(p[1], extra=ex)
        elif p[0] == "answer":
            b.answer(p[1], extra=ex)
        else:
            both = {**(ex or {}), **p[3]}
            if ex and len(both) < len(ex) + len(p[3]):  # the message and its call share a key: keep both
                both = {**p[3], "message": ex}
            b.call(p[1], p[2], None, where, extra=both or None)


MESSAGE_KEYS = ("role", "content")


def read_messages(b: TrajectoryBuilder, messages: Any, where: str) -> str:
    """Feed ``messages`` (system / user / assistant / tool) into ``b``; returns the system prompt.

    A message's keys other than ``role`` and ``content`` (and a tool message's ``name`` /
    ``tool_call_id``) are kept as the ``extra`` of its turn or first step.
    """
    system = ""
    for i, m in enumerate(require_list(messages, where)):
        at = f"{where}[{i}]"
        m = require_dict(m, at)
        role = m.get("role")
        extra = {k: v for k, v in m.items() if k not in MESSAGE_KEYS}
        if role == "system":
            if b.turns:
                raise SchemaError("a system message after the conversation started has no place in a "
                                  "trajectory", f"{at}.role")
            if extra:
                raise SchemaError(f"unexpected keys in a system message: {', '.join(sorted(extra))}",
                                  f"{at}.{sorted(extra)[0]}")
            system = (system + "\n\n" if system else "") + text_of(m.get("content"), f"{at}.content")
        elif role == "user":
            b.user(text_of(m.get("content"), f"{at}.content"), extra or None)
        elif role == "assistant":
            _feed(b, response_pieces(m.get("content"), f"{at}.content"), at, extra or None)
        elif role in ("tool", "function"):
            for k in ("name", "tool_call_id"):
                extra.pop(k, None)
            b.result(text_of(m.get("content"), f"{at}.content", json_ok=True), m.get("tool_call_id"),
                     m.get("name"), True, at, extra=extra or None)
        else:
            raise SchemaError(f"unknown role {role!r}; expected system, user, assistant or tool", f"{at}.role")
    return system


def _rest(record: dict, mapped: tuple[str, ...]) -> dict:
    """The record's values the reader did not map (nor took as the external id): kept verbatim in
    ``meta.extra``."""
    id_key = _id_key(record) if _external_id(record) == record.get(_id_key(record) or "") else None
    return {k: v for k, v in record.items() if k not in mapped and k != "meta" and k != id_key}


# The test questions (MCQ) ---------------------------------------------------------------------------

def _mcq_fields(record: dict) -> tuple[str, str, dict]:
    question = record.get("question")
    if not isinstance(question, str) or not question.strip():
        raise SchemaError("must be a non-empty string (the user's question)", "question")
    correct = record.get("correct_answer")
    if correct not in KINDS:
        raise SchemaError(f"must be one of {', '.join(KINDS)}, got {correct!r}", "correct_answer")
    answers = require_dict(record.get("answers"), "answers")
    if correct not in answers:
        raise SchemaError(f"the correct answer ({correct!r}) is missing", f"answers.{correct}")
    return question, correct, answers


def read_mcq(record: dict, *, source: str = "", tools: list[dict] | None = None, answer=None) -> Trajectory:
    """A test question as a trajectory: the question and the correct behaviour (see the module docstring)."""
    record = require_dict(record, "record")
    question, correct, answers = _mcq_fields(record)
    b = TrajectoryBuilder()
    b.user(question)
    where = f"answers.{correct}"
    if correct == "tool_call":
        for name, args, extra in _calls(answers[correct], where):
            b.call(name, args, None, where, extra=extra or None)
    else:
        b.answer(text_of(answers[correct], where))
    traj_tools = read_tools(record["tools"], "tools") if "tools" in record else list(tools or [])
    extra = _rest(record, ("question", "correct_answer", "tools", "target_tool"))
    held_out = record.get("held_out_param")
    if correct == "request_for_info" and isinstance(held_out, str) and held_out:
        extra["missing_args"] = [held_out]  # what evaluation expects the clarifying question to ask for
    reference = {"correct_answer": correct}
    if "target_tool" in record:
        reference["target_tool"] = record["target_tool"]
    meta = make_meta(meta_field(record.get("meta"), "meta"), "meta", source=source, external_id=_external_id(record),
                     case_types=[CASE_TYPES[correct]], reference=reference, extra=extra)
    return b.finish(tools=traj_tools, meta=meta)


def mcq_candidates(record: dict) -> dict:
    """A test question in ``annotate.pairs``' candidates shape: one candidate per kind, the correct one marked."""
    record = require_dict(record, "record")
    question, correct, answers = _mcq_fields(record)
    cands = []
    for kind in KINDS:
        if kind not in answers:
            continue
        where = f"answers.{kind}"
        if kind == "tool_call":
            try:
                steps = [Step("tool_call", name=n, arguments=a, call_id=f"call_{i + 1}", extra=x)
                         for i, (n, a, x) in enumerate(_calls(answers[kind], where))]
            except SchemaError:
                if kind == correct:
                    raise
                value = answers[kind]
                steps = [Step("answer", value if isinstance(value, str) else json.dumps(value, ensure_ascii=False),
                              labels=["format_error"])]
        else:
            steps = [Step("answer", text_of(answers[kind], where))]
        cands.append({"id": kind, "type": CANDIDATE_TYPES[kind], "steps": [s.to_dict() for s in steps]})
    tools = read_tools(record["tools"], "tools") if "tools" in record else []
    ext = _external_id(record)
    return {"id": str(ext) if ext is not None else "", "tools": tools, "question": question,
            "candidates": cands, "correct": correct}


def mcq_pairs(record: dict, categories: dict | None = None, override: str = "") -> list:
    """The correct answer against each wrong one (three pairs for a full question)."""
    try:
        cands = mcq_candidates(record)
    except SchemaError as e:
        raise PairError(e.message, e.field) from None
    kinds = [c["id"] for c in cands["candidates"]]
    try:
        return pairs_from_candidates(cands, categories, override)
    except PairError as e:
        m = re.match(r"candidates\[(\d+)\](?:\.steps)?(.*)", e.field)
        if m is None:
            raise
        kind, rest = kinds[int(m.group(1))], m.group(2)
        if kind == "tool_call" and rest.startswith("[0]") and not _is_call_list(record["answers"][kind]):
            rest = rest[3:]  # one call written as an object, not a list
        raise PairError(e.message, f"answers.{kind}{rest}") from None


def _is_call_list(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value = loads(value)
        except json.JSONDecodeError:
            return False
    return isinstance(value, list)


# SFT rows -------------------------------------------------------------------------------------------

def read_sft(record: dict, *, source: str = "", tools: list[dict] | None = None, answer=None) -> Trajectory:
    record = require_dict(record, "record")
    b = TrajectoryBuilder()
    system = read_messages(b, record.get("messages"), "messages")
    traj_tools = read_tools(record["tools"], "tools") if "tools" in record else list(tools or [])
    traj = b.finish(system=system, tools=traj_tools)
    given = meta_field(record.get("meta"), "meta")
    set_meta(traj, given, source=source, external_id=_external_id(record),
                          extra=_rest(record, ("messages", "tools")))
    return traj


# Preference rows ------------------------------------------------------------------------------------

def _response(record: dict, key: str) -> Any:
    r = require_dict(record.get(key), key)
    if r.get("role", "assistant") != "assistant":
        raise SchemaError(f"must be an assistant message, got role {r.get('role')!r}", f"{key}.role")
    return r


def read_pref(record: dict, *, source: str = "", tools: list[dict] | None = None, answer=None) -> Trajectory:
    """The prompt and the chosen response (the rejected response is kept in ``meta.extra``)."""
    record = require_dict(record, "record")
    b = TrajectoryBuilder()
    system = read_messages(b, record.get("messages"), "messages")
    chosen = _response(record, "chosen_response")
    extra = {k: v for k, v in chosen.items() if k not in MESSAGE_KEYS}
    _feed(b, response_pieces(chosen.get("content"), "chosen_response.content"), "chosen_response", extra or None)
    traj_tools = read_tools(record["tools"], "tools") if "tools" in record else list(tools or [])
    traj = b.finish(system=system, tools=traj_tools)
    given = meta_field(record.get("meta"), "meta")
    ext = _external_id(record)
    set_meta(traj, given, source=source, external_id=ext,
                          extra=_rest(record, ("messages", "tools", "chosen_response")))
    return traj


def _pref_category(context: Trajectory, chosen: list[Step], rejected: list[Step]) -> str:
    """When2Call's four behaviours as pair categories: a call chosen over words is tool_needed; words
    chosen over a call are a clarifying question (missing_argument), a refusal of a call to a tool
    that is not offered (irrelevant_tools) or a direct answer (tool_not_needed)."""
    category = call_or_words(chosen, rejected)
    if category == "tool_not_needed":
        offered = context.tool_names()
        calls_r = [s for s in rejected if s.kind == "tool_call"]
        return "irrelevant_tools" if any(s.name not in offered for s in calls_r) else "tool_not_needed"
    return category or guess_category(context, chosen, rejected)


def pref_pairs(record: dict, categories: dict | None = None, override: str = "") -> list:
    """One pair: the prompt, the chosen response against the rejected one."""
    try:
        record = require_dict(record, "record")
        b = TrajectoryBuilder()
        system = read_messages(b, record.get("messages"), "messages")
        if not b.turns:
            raise SchemaError("needs the user's message the responses answer", "messages")
        tools = read_tools(record["tools"], "tools") if "tools" in record else []
        context = b.finish(system=system, tools=tools)
        ext = _external_id(record)
        context.meta = make_meta({}, "meta", source="when2call_pref", external_id=ext)
        used = {s.call_id for _, _, s in context.steps() if s.call_id}
        first = len(used) + 1
        chosen = response_steps(_response(record, "chosen_response").get("content"), "chosen_response.content",
                                first_id=first)
        rejected = response_steps(_response(record, "rejected_response").get("content"),
                                  "rejected_response.content", lenient=True, first_id=first)
    except SchemaError as e:
        raise PairError(e.message, e.field) from None
    pair = Pair(context=context, chosen=chosen, rejected=rejected, source="imported",
                category=_pref_category(context, chosen, rejected), external_id=str(ext) if ext is not None else "",
                override=override)
    label_rejected(pair)
    errors = pair_errors(pair, categories)
    if errors:
        e = errors[0]
        field_ = re.sub(r"^(chosen|rejected)\[\d+\]", r"\1_response.content", e.field)
        raise PairError(e.message, field_)
    return [pair]


_EXAMPLE = {
    "uuid": "1f8221f0-7906-4e11-80f3-6cbe38ce49c8", "source": "BFCL v2 Live Simple",
    "source_id": "live_simple_179-104-0",
    "question": "get unique identifier for an ironing service within Chiang Mai?",
    "correct_answer": "cannot_answer",
    "answers": {"direct": "The unique identifier ... would be its business registration number.",
                "tool_call": "{\"name\": \"get_service_id\", \"arguments\": {\"service_id\": 2, \"province_id\": 2}}",
                "request_for_info": "Could you specify if you're looking for a standard or an extensive ironing service?",
                "cannot_answer": "Apologies, I'm unable to provide that information."},
    "target_tool": None, "tools": [],
    "orig_tools": ["{\"name\": \"get_service_id\", \"parameters\": {\"type\": \"dict\", \"properties\": {}}}"],
}

register(Format(
    "when2call", title="When2Call test questions (MCQ)", aliases=("when2call_mcq",),
    detect=is_mcq, read=read_mcq, pairs=mcq_pairs,
    rule="'question', 'answers' and 'correct_answer'",
    example=_EXAMPLE))
register(Format(
    "when2call_pref", title="When2Call preference rows",
    detect=is_pref, read=read_pref, pairs=pref_pairs,
    rule="'chosen_response' and 'rejected_response'",
    example={"tools": [{"name": "get_company_by_domain", "parameters": {"type": "dict", "properties": {
        "domain": {"type": "str"}}}, "required": ["domain"]}],
        "messages": [{"role": "user", "content": "Fetch company details."}],
        "chosen_response": {"role": "assistant", "content": "Could you please specify the domain of the company?"},
        "rejected_response": {"role": "assistant", "content": "<TOOLCALL>[{\"name\": \"get_company_by_domain\", "
                                                              "\"arguments\": {\"domain\": \"www.apple.com\"}}]</TOOLCALL>"}}))
register(Format(
    "when2call_sft", title="When2Call SFT rows (<TOOLCALL> in messages)",
    detect=is_sft, read=read_sft,
    rule="'tools' and 'messages' whose last (assistant) content holds <TOOLCALL>",
    example={"tools": [{"name": "get_weather", "parameters": {"type": "dict", "properties": {"city": {"type": "str"}}}}],
             "messages": [{"role": "user", "content": "Weather in Oslo?"},
                          {"role": "assistant", "content": "<TOOLCALL>[{\"name\": \"get_weather\", "
                                                           "\"arguments\": {\"city\": \"Oslo\"}}]</TOOLCALL>"}]}))
