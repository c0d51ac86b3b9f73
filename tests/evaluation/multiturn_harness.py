"""BFCL's multi-turn items from the bfcl-eval wheel, and scripted models that play them (not a test module)."""

from __future__ import annotations

import json

from evaluation import bfcl_package
from evaluation.environments import bfcl
from evaluation.environments.base import gold_call
from evaluation.generate import Generation
from evaluation.multiturn import MultiTurnItem, item_from_bfcl

READ_ONLY = {"ls", "cat", "grep", "tail", "diff", "wc", "find", "pwd", "du"}  # GorillaFileSystem's


def bfcl_records(category: str, n: int) -> list[tuple[dict, dict]]:
    """The first ``n`` questions of a BFCL multi-turn category with their possible answers."""
    def read(path):
        with open(path, encoding="utf-8") as fh:
            return [json.loads(line) for _, line in zip(range(n), fh)]
    questions = read(bfcl_package.data_file(f"BFCL_v4_{category}.json"))
    answers = {a["id"]: a for a in read(bfcl_package.data_file(f"possible_answer/BFCL_v4_{category}.json"))}
    return [(q, answers[q["id"]]) for q in questions]


def bfcl_items(category: str, n: int) -> list[MultiTurnItem]:
    return [item_from_bfcl(q, a) for q, a in bfcl_records(category, n)]


def calls_of(item: MultiTurnItem) -> list[list[tuple[str, dict]]]:
    """The item's gold calls per turn as (name, keyword arguments)."""
    cls = bfcl.environment_class(item.environment["classes"])
    return [[gold_call(cls, c) for c in turn] for turn in item.ground_truth]


class ScriptedModel:
    """A generator that plays fixed calls per turn, all in one step, then answers "Done.":
    ``script[item.id][turn]`` is a list of (name, arguments). It finds the item by the first user
    message and the turn by counting user messages, as a model reading the conversation would."""

    def __init__(self, items: list[MultiTurnItem], script: dict[str, list[list[tuple[str, dict]]]]):
        self.by_first = {self._first(it): it.id for it in items}
        self.script = script
        self.requests = 0

    @staticmethod
    def _first(item_or_messages) -> str:
        if isinstance(item_or_messages, MultiTurnItem):
            return item_or_messages.turns[0][0]["content"]
        return next(m["content"] for m in item_or_messages if m["role"] == "user")

    def generate(self, conversations, batch_size=None):
        self.requests += 1
        out = []
        for messages, tools in conversations:
            item_id = self.by_first[self._first(messages)]
            turn = sum(1 for m in messages if m["role"] == "user") - 1
            calls = self.script[item_id][turn]
            if messages[-1]["role"] == "user" and calls:
                message = {"role": "assistant", "content": "", "tool_calls": [
                    {"type": "function", "function": {"name": n, "arguments": json.dumps(a)}} for n, a in calls]}
            else:
                message = {"role": "assistant", "content": "Done."}
            out.append(Generation(text=json.dumps(message), message=message, prompt_text=json.dumps(messages)))
        return out


def call_text(name: str, arguments: dict) -> str:
    """A call as BFCL's decoder writes it, for BFCL's own checker."""
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in arguments.items())})"
