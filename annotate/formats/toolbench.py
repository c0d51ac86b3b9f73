"""ToolBench answer trees (OpenBMB/ToolBench, ``data/answer/G*_answer/*.json``) (pure; no Django).

One answer file is one JSON object, as ToolBench's ``DFS_tree_search.to_json`` writes it:

- ``answer_generation``: ``function`` (the tool list, with ToolBench's ``Finish``),
  ``train_messages`` (one message list per assistant decision of the final chain, each a prefix of
  the last: ``system``, ``user``, ``assistant`` with ``content`` and / or ``function_call``
  ``{"name", "arguments"}`` (JSON text), ``function`` results), ``final_answer`` (the ``Finish``
  arguments), ``finish_type``, ``valid_data``, ``query``, ``query_count``, ``total_tokens``, ``chain``;
- ``tree``: the DFSDT search tree (``{"size", "max_length", "tree": node}``; a node has
  ``node_type`` ``Thought`` / ``Action`` / ``Action Input``, ``description``, ``observation``,
  ``observation_code``, ``pruned``, ``children`` ...); ``compare_candidates``, ``forward_args``, ``win``.

As a trajectory: the final chain (the last ``train_messages`` list): the system prompt, the user
query, assistant ``content`` as ``think``, calls as ``tool_call`` (arguments parsed), ``function``
messages as ``tool_result`` (failed when their ``error`` is not empty), and ``Finish`` with
``return_type: give_answer`` as the ``answer`` step (its ``final_answer``). Every other value is kept
in ``meta.extra`` as the record has it (the tree included), except the earlier ``train_messages``
lists, which are prefixes of the last: each is kept as its length; other keys of the system message
are kept under its field path (``answer_generation.train_messages[N][0]``). A later ``user`` message inside
the chain (DFSDT's "this is not your first try" prompt) is kept in the turn's ``extra`` with its
position (``interjections``).

As preference pairs (``pairs import``, :func:`tree_pairs`): every abandoned branch of the search
tree (each root-to-leaf path that is not the final chain) is a rejected continuation, forked where
it left the final chain: the context is the shared prefix, chosen is the rest of the final chain,
rejected the branch's steps.
"""

from __future__ import annotations

import json
from typing import Any

from annotate.formats.common import (
    loads, TrajectoryBuilder, meta_field, require_dict, require_list, set_meta, text_of, tools_field, type_name,
)
from annotate.formats import Format, register
from annotate.trajectory import Meta, SchemaError, Step, Trajectory, Turn
from annotate.pairs.core import Pair, PairError, guess_category, label_rejected, pair_errors, same_content

FINISH = "Finish"
GIVE_ANSWER = "give_answer"
MESSAGE_KEYS = {"system": ("role", "content"), "user": ("role", "content"),
                "assistant": ("role", "content", "function_call"), "function": ("role", "name", "content")}


def is_toolbench(r: dict) -> bool:
    return type(r.get("answer_generation")) is dict


def _failed(observation: str) -> bool:
    """ToolBench wraps every result as ``{"error": "...", "response": "..."}``: a non-empty error failed."""
    if not observation.startswith("{"):
        return False
    try:
        value = loads(observation)
    except json.JSONDecodeError:
        return False
    return isinstance(value, dict) and bool(value.get("error"))


def _finish_args(arguments: Any) -> dict | None:
    """The parsed ``Finish`` arguments when they give an answer, else None."""
    if isinstance(arguments, str):
        try:
            arguments = loads(arguments)
        except json.JSONDecodeError:
            return None
    if isinstance(arguments, dict) and arguments.get("return_type") == GIVE_ANSWER \
            and isinstance(arguments.get("final_answer"), str):
        return arguments
    return None


def _prefix_lengths(lists: list, chain: list) -> list:
    """Each earlier train_messages list as its length when it is a prefix of ``chain`` (else as it is)."""
    return [len(m) if isinstance(m, list) and m == chain[:len(m)] else m for m in lists]


def read(record: dict, *, source: str = "", tools: list[dict] | None = None, answer=None) -> Trajectory:
    """The final chain of a ToolBench answer as a trajectory (see the module docstring)."""
    record = require_dict(record, "record")
    ag = require_dict(record.get("answer_generation"), "answer_generation")
    lists = ag.get("train_messages")
    if not lists:
        why = " (valid_data is false: the search found no chain)" if ag.get("valid_data") is False else ""
        raise SchemaError(f"has no final chain to import{why}", "answer_generation.train_messages")
    lists = require_list(lists, "answer_generation.train_messages")
    last = len(lists) - 1
    where = f"answer_generation.train_messages[{last}]"
    chain = require_list(lists[last], where)
    b = TrajectoryBuilder()
    system = ""
    interjections: list[dict] = []
    finish_text = None
    system_extra: dict[str, dict] = {}
    for i, m in enumerate(chain):
        at = f"{where}[{i}]"
        m = require_dict(m, at)
        role = m.get("role")
        if type(role) is not str or role not in MESSAGE_KEYS:
            raise SchemaError(f"unknown role {role!r}; expected system, user, assistant or function", f"{at}.role")
        extra = {k: v for k, v in m.items() if k not in MESSAGE_KEYS[role]}
        if role in ("system", "user") and (b.turns or (role == "system" and system)):
            # A prompt inside the chain (DFSDT's diversity prompt): kept where it was said.
            interjections.append({"at": sum(len(t.steps) for t in b.turns), "message": m})
        elif role == "system":
            if extra:  # kept by the message's place, as the messages format keeps a system message's
                system_extra[at] = extra
            system = text_of(m.get("content"), f"{at}.content")
        elif role == "user":
            b.user(text_of(m.get("content"), f"{at}.content"), extra or None)
        elif role == "assistant":
            call = m.get("function_call")
            content = m.get("content")
            text = None if content is None else text_of(content, f"{at}.content")
            if text or (text is not None and call is None):
                b.think(text, extra=extra or None)  # (an empty message without a call is kept as written)
                extra = {}
            if call is not None:
                call = require_dict(call, f"{at}.function_call")
                extra.update({f"function_call.{k}": v for k, v in call.items() if k not in ("name", "arguments")})
                finished = _finish_args(call.get("arguments")) if call.get("name") == FINISH else None
                if finished is not None:
                    rest = {k: v for k, v in finished.items() if k != "final_answer"}
                    b.answer(finished["final_answer"], extra={"finish": rest, **extra})
                    finish_text = call.get("arguments")
                else:
                    b.call(call.get("name"), call.get("arguments"), None, f"{at}.function_call", extra=extra or None)
        else:
            content = text_of(m.get("content"), f"{at}.content", json_ok=True)
            name = m.get("name")
            open_calls = b.open_calls()
            # ToolBench renames a made-up function in its result message; the result answers the last call.
            b.result(content, open_calls[-1] if open_calls else None, name, not _failed(content), at,
                     extra=extra or None)
    if not b.turns:
        raise SchemaError("the chain has no user message", where)
    if interjections:
        b.turns[0].extra = {**b.turns[0].extra, "interjections": interjections}
    traj_tools = tools_field(ag["function"], "answer_generation.function") if "function" in ag else list(tools or [])
    rest_ag = {k: v for k, v in ag.items() if k not in ("function", "train_messages")}
    if finish_text is not None and rest_ag.get("final_answer") == finish_text:
        del rest_ag["final_answer"]  # the answer step holds it
    if last:
        rest_ag["train_messages"] = _prefix_lengths(lists[:last], chain)
    id_key = next((k for k in ("id", "query_id") if record.get(k) not in (None, "")), None)
    ext = record[id_key] if id_key else None
    # The external id's key needs no other place when it is a string (any other value is kept as it is).
    mapped = ("answer_generation", "meta", id_key if type(ext) is str else None)
    extra = {k: v for k, v in record.items() if k not in mapped}
    extra["answer_generation"] = rest_ag
    extra.update(system_extra)
    given = meta_field(record.get("meta"), "meta")
    traj = b.finish(system=system, tools=traj_tools)
    set_meta(traj, given, source=source, external_id=ext, extra=extra)
    return traj


# The search tree -> preference pairs -----------------------------------------------------------------

def _leaves(root: dict, where: str) -> list[list[tuple[dict, str]]]:
    """Every root-to-leaf path as ``[(node, field path)]`` (iteratively; trees can be deep)."""
    out = []
    stack = [[(root, where)]]
    while stack:
        path = stack.pop()
        node, at = path[-1]
        children = node.get("children") or []
        if not isinstance(children, list):
            raise SchemaError(f"must be a list, got {type_name(children)}", f"{at}.children")
        if not children:
            out.append(path)
            continue
        for i in range(len(children) - 1, -1, -1):
            child = children[i]
            if not isinstance(child, dict):
                raise SchemaError(f"a tree node must be an object, got {type_name(child)}", f"{at}.children[{i}]")
            stack.append(path + [(child, f"{at}.children[{i}]")])
    return out


def _path_steps(path: list[tuple[dict, str]]) -> tuple[list[Step], list[int], list[str]]:
    """The canonical steps of a root-to-leaf path; for each step, the index of the node it came
    from and that node's field path. Call ids are ``call_<depth>``: the same on every path."""
    steps: list[Step] = []
    owners: list[int] = []
    fields: list[str] = []
    action = ""
    for k, (node, at) in enumerate(path):
        if k == 0:
            continue  # the root holds the prompt, not a step
        kind = node.get("node_type")
        desc = node.get("description")
        desc = desc if isinstance(desc, str) else json.dumps(desc, ensure_ascii=False)
        made: list[Step] = []
        if kind == "Action":
            action = desc
        elif kind == "Action Input":
            observation = node.get("observation")
            observation = observation if isinstance(observation, str) else (
                "" if observation is None else json.dumps(observation, ensure_ascii=False))
            finished = _finish_args(desc) if action == FINISH else None
            if finished is not None:
                made.append(Step("answer", finished["final_answer"]))
            else:
                try:
                    args = loads(desc) if desc.strip() else {}
                except json.JSONDecodeError:
                    args = desc  # kept as the model wrote it (a rejected side may be malformed)
                cid = f"call_{k}"
                code = node.get("observation_code")
                made.append(Step("tool_call", name=action or "?", arguments=args, call_id=cid))
                made.append(Step("tool_result", observation, name=action or "?", call_id=cid,
                                 ok=code in (None, 0, 3) and not _failed(observation)))
        elif desc.strip():  # Thought (and any other node that says something)
            made.append(Step("think", desc))
        steps.extend(made)
        owners.extend([k] * len(made))
        fields.extend([f"{at}.description"] * len(made))
    return steps, owners, fields


def _final_path(paths: list, ag: dict) -> list | None:
    """The path of the final chain: the Finish give_answer leaf whose arguments are the record's
    ``final_answer`` (else the first such leaf the search reached)."""
    found = []
    for path in paths:
        for k in range(len(path) - 1, 0, -1):
            node, _ = path[k]
            parent, _ = path[k - 1]
            if node.get("node_type") == "Action Input" and parent.get("description") == FINISH \
                    and not node.get("pruned") and _finish_args(node.get("description")) is not None:
                found.append((path[: k + 1], node.get("description") == ag.get("final_answer")))
                break
    for path, matches in found:
        if matches:
            return path
    return found[0][0] if found else None


def tree_pairs(record: dict, categories: dict | None = None, override: str = "") -> list:
    """One pair per abandoned branch of the record's search tree (see the module docstring)."""
    try:
        traj = read(record)
        tree = require_dict(record.get("tree"), "tree")
        root = require_dict(tree.get("tree"), "tree.tree")
        paths = _leaves(root, "tree.tree")
    except SchemaError as e:
        raise PairError(e.message, e.field) from None
    final = _final_path(paths, record["answer_generation"])
    if final is None:
        raise PairError("the search tree has no Finish give_answer chain to prefer", "tree.tree")
    final_ids = [id(n) for n, _ in final]
    final_steps, final_owners, final_fields = _path_steps(final)
    ext = traj.meta.external_id
    out = []
    for j, path in enumerate(paths):
        ids = [id(n) for n, _ in path]
        if ids[: len(final_ids)] == final_ids:
            continue  # the final chain (or a leaf below its end)
        fork = 0
        while fork < min(len(ids), len(final_ids)) and ids[fork] == final_ids[fork]:
            fork += 1
        fork -= 1  # the last node the branch shares with the final chain
        steps, owners, _ = _path_steps(path)
        cut = sum(1 for o in final_owners if o <= fork)
        rejected = [s for s, o in zip(steps, owners) if o > fork]
        chosen = final_steps[cut:]
        if not rejected or not chosen or same_content(chosen, rejected):
            continue  # nothing said on the branch, or it says what the final chain says
        context = Trajectory(system=traj.system, tools=traj.tools,
                             turns=[Turn(traj.turns[0].user, [s for s, o in zip(final_steps, final_owners) if o <= fork])],
                             meta=Meta(source="toolbench", external_id=ext))
        pair = Pair(context=context, chosen=chosen, rejected=rejected, source="imported",
                    category=guess_category(context, chosen, rejected),
                    external_id=f"{ext}:branch{j}" if ext else "", override=override)
        label_rejected(pair)
        errors = pair_errors(pair, categories)
        if errors:
            e = errors[0]
            if e.field.startswith("chosen["):
                i = int(e.field[len("chosen["):e.field.index("]")])
                raise PairError(e.message, final_fields[cut + i])
            raise PairError(e.message, f"{path[fork + 1][1]}")
        out.append(pair)
    return out


register(Format(
    "toolbench", title="ToolBench answer trees (DFSDT / CoT answers)",
    detect=is_toolbench, read=read, pairs=tree_pairs,
    rule="'answer_generation' (an object with 'train_messages'); 'tree' gives pairs",
    example={"answer_generation": {
        "valid_data": True, "finish_type": "give_answer", "query": "A quote about love?",
        "final_answer": "{\"return_type\": \"give_answer\", \"final_answer\": \"Love is patient.\"}",
        "function": [{"name": "love_quote_for_olato_quotes", "parameters": {"type": "object", "properties": {}}},
                     {"name": "Finish", "parameters": {"type": "object", "properties": {
                         "return_type": {"type": "string", "enum": ["give_answer", "give_up_and_restart"]},
                         "final_answer": {"type": "string"}}, "required": ["return_type"]}}],
        "train_messages": [[
            {"role": "system", "content": "You are AutoGPT, you can use many tools(functions) to do the following task."},
            {"role": "user", "content": "\nA quote about love?\nBegin!\n"},
            {"role": "assistant", "content": None,
             "function_call": {"name": "love_quote_for_olato_quotes", "arguments": "{}"}},
            {"role": "function", "name": "love_quote_for_olato_quotes",
             "content": "{\"error\": \"\", \"response\": \"Love is patient.\"}"},
            {"role": "assistant", "content": None, "function_call": {
                "name": "Finish",
                "arguments": "{\"return_type\": \"give_answer\", \"final_answer\": \"Love is patient.\"}"}}]]}}))
