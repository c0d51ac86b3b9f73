"""Tool environments: what an environment is, how a tool call runs in it, how its state is compared
(pure; no Django; transformers only inside :func:`tool_schemas`, which runs in the episode's child).

An environment is a plain Python class, the shape TRL's ``GRPOTrainer(environment_factory=...)``
takes: constructed without arguments, ``reset(**row)`` sets up the state from a dataset row (and may
return text appended to the prompt), every other public method is a tool (its schema read from the
type hints and the Google-style docstring, as ``transformers.utils.get_json_schema`` reads them), and
an optional ``get_reward()`` scores the episode from the final state (TRL's name for the reward
hook; a public ``reward`` method would be a tool).

>>> class Counter:
...     def reset(self, start: int = 0, **row):
...         self.count = start
...     def add(self, n: int) -> int:
...         '''Add to the counter.
...
...         Args:
...             n: How much to add.
...         '''
...         self.count += n
...         return self.count
...     def get_reward(self) -> float:
...         return float(self.count == 3)
>>> tool_names(Counter)
['add']
>>> env = Counter(); env.reset(start=1)
>>> [call_tool(env, "add", {"n": 2}), call_tool(env, "nope", {}).text]
[ToolResult(text='3', ok=True), "Error during execution: no tool named 'nope'"]
>>> public_state(env)
{'count': 3}
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import sys
import threading
from dataclasses import dataclass
from typing import Any, Iterable

from core.errors import InputError

HOOKS = ("reset", "get_reward")
ERROR_PREFIX = "Error during execution: "  # BFCL's text for a tool that raised


class EnvironmentRefused(InputError):
    """An environment that may not or cannot be used; ``field`` names the setting or form field."""


@dataclass
class ToolResult:
    """What a tool call returned, as the model reads it: text, and whether the tool raised."""

    text: str
    ok: bool = True


def tool_names(cls: type) -> list[str]:
    """The tools of an environment class: its public functions except the hooks, as TRL lists them
    (``inspect.getmembers(type(env), inspect.isfunction)``, so properties are never evaluated)."""
    return [name for name, _ in inspect.getmembers(cls, predicate=inspect.isfunction)
            if not name.startswith("_") and name not in HOOKS]


def result_text(value: Any) -> str:
    """A tool's return value as the text fed back, converted as BFCL's executor converts it: text as
    is, a dict as JSON (``str()`` when it does not serialise), anything else ``str()``."""
    if type(value) is str:
        return value
    if type(value) is dict:
        try:
            return json.dumps(value)
        except (TypeError, ValueError):
            return str(value)
    return str(value)


def call_tool(env: Any, name: str, arguments: Any) -> ToolResult:
    """Run one tool call. A tool that raises is an error result the model reads (BFCL's
    ``Error during execution: ...``), not a failed episode; so is a call of something that is no tool."""
    generic = getattr(env, "_call_tool", None)  # an environment answering any name (a replay)
    if generic is not None:
        return generic(name, arguments)
    if not isinstance(arguments, dict):
        return ToolResult(f"{ERROR_PREFIX}the arguments of {name} must be an object", ok=False)
    if name not in tool_names(type(env)):
        return ToolResult(f"{ERROR_PREFIX}no tool named {name!r}", ok=False)
    try:
        return ToolResult(result_text(getattr(env, name)(**arguments)))
    except MemoryError:
        raise  # the episode's memory limit: ends the episode, labelled
    except Exception as exc:  # the tool's own error: the model reads it, as BFCL feeds it back
        return ToolResult(f"{ERROR_PREFIX}{exc}", ok=False)


def public_state(env: Any) -> dict:
    """The state BFCL's checker compares: the instance's attributes not starting with ``_``."""
    return {k: v for k, v in vars(env).items() if not k.startswith("_")}


def compare_states(model: dict[str, Any], gold: dict[str, Any]) -> dict[str, dict]:
    """The attributes that differ, per instance, compared as BFCL's ``state_checker`` compares them
    (every public attribute of the gold instance, with ``!=``); empty when the states agree."""
    differences: dict[str, dict] = {}
    for name, gold_instance in gold.items():
        model_instance = model[name]
        for attr, gold_value in public_state(gold_instance).items():
            model_value = getattr(model_instance, attr, None)
            if model_value != gold_value:
                differences.setdefault(name, {})[attr] = {"model": shown(model_value),
                                                          "ground_truth": shown(gold_value)}
    return differences


def shown(value: Any, limit: int = 4000) -> Any:
    """``value`` for a transcript: JSON-able, and its ``repr`` cut at ``limit`` characters when its
    JSON is longer (a long-context file system's state runs to megabytes)."""
    out = jsonable(value)
    text = json.dumps(out, ensure_ascii=False, default=str)
    return out if len(text) <= limit else text[:limit] + f"... ({len(text)} characters in all)"


def jsonable(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON can hold it (objects by ``repr``), cut at a depth, for transcripts."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if depth > 8:
        return repr(value)[:200]
    if isinstance(value, dict):
        return {str(k): jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v, depth + 1) for v in value]
    return repr(value)[:2000]


def is_subsequence_unordered(gold: list, model: list) -> tuple[bool, list]:
    """Every gold result is among the model's (each used once, any order): BFCL's response check."""
    remaining = list(model)
    missing = []
    for item in gold:
        try:
            remaining.remove(item)
        except ValueError:
            missing.append(item)
    return not missing, missing


def load_class(path: str, allowed: Iterable[str], field: str = "environment") -> type:
    """The class at dotted ``path``, if an admin listed it in ``allowed`` (importing a name from a
    form would run any code on the worker, so only listed paths import)."""
    allowed = list(allowed)
    if path not in allowed:
        shown = ", ".join(allowed) or "none is registered (STUDIO_ENVIRONMENT_CLASSES)"
        raise EnvironmentRefused(f"{path!r} is not a registered environment class; registered: {shown}", field)
    module_name, _, class_name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise EnvironmentRefused(f"{path!r} cannot be imported: {exc}", field) from None
    if not inspect.isclass(cls) or not callable(getattr(cls, "reset", None)):
        raise EnvironmentRefused(f"{path!r} is not an environment class (a class with a reset method)", field)
    return cls


def tool_schemas(cls: type) -> list[dict]:
    """OpenAI function specs of an environment's tools, from type hints and docstrings as TRL reads
    them (``transformers.utils.get_json_schema``). Imported here, not at the top: this runs in the
    episode's child process or a worker, never in the web process (transformers takes seconds).

    Without torch: transformers imports it only to read a ``torch.Tensor`` hint (as audio), and a
    CUDA build of torch maps several GB, past the episode process's address-space limit (2 GB by
    default): on a GPU machine every episode failed to start ("libtorch_cpu.so: failed to map
    segment"). Where the environment imported torch itself, its hints are read as before."""
    from transformers.utils import chat_template_utils, get_json_schema
    from transformers.utils.chat_template_utils import DocstringParsingException, TypeHintParsingException

    out = []
    # (one thread at a time: a second one would take the first's stand-in for the original and
    # put it back last, leaving transformers without torch for good)
    with _SCHEMA_LOCK:
        torch_available = chat_template_utils.is_torch_available
        if "torch" not in sys.modules:
            chat_template_utils.is_torch_available = lambda: False
        try:
            for name in tool_names(cls):
                try:
                    schema = get_json_schema(getattr(cls, name))
                    out.append(schema if "function" in schema else {"type": "function", "function": schema})
                except (DocstringParsingException, TypeHintParsingException) as exc:
                    raise EnvironmentRefused(f"{cls.__name__}.{name}: {exc}", "environment") from None
        finally:
            chat_template_utils.is_torch_available = torch_available
    return out


_SCHEMA_LOCK = threading.Lock()


def parse_call_string(text: str) -> tuple[str, list, dict]:
    """A gold call as BFCL writes it (``"cd(folder='document')"``, ``"sort('a.txt')"``): the name, the
    positional and the keyword arguments (literals only; anything else is a ValueError).

    >>> parse_call_string("mv(source='a.txt', destination='tmp')")
    ('mv', [], {'source': 'a.txt', 'destination': 'tmp'})
    >>> parse_call_string("sort('final_report.pdf')")
    ('sort', ['final_report.pdf'], {})
    """
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ValueError(f"not a call: {text!r} ({exc.msg})") from None
    if not isinstance(node, ast.Call) or not isinstance(node.func, (ast.Name, ast.Attribute)):
        raise ValueError(f"not a call: {text!r}")
    name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
    try:
        args = [ast.literal_eval(a) for a in node.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
    except ValueError:
        raise ValueError(f"only literal arguments are supported: {text!r}") from None
    return name, args, kwargs


def gold_call(env_cls: type, call: Any) -> tuple[str, dict]:
    """A gold call (BFCL's call text, or ``{"name", "arguments"}``) as a name and keyword arguments,
    positional ones named from the tool's signature."""
    if isinstance(call, dict):
        return str(call.get("name", "")), dict(call.get("arguments") or {})
    name, args, kwargs = parse_call_string(str(call))
    if args:
        method = getattr(env_cls, name, None)
        params = [p for p in inspect.signature(method).parameters.values()][1:] if method else []
        if len(args) > len(params):
            raise ValueError(f"{call!r}: {name} takes {len(params)} arguments")
        kwargs = {**{p.name: v for p, v in zip(params, args)}, **kwargs}
    return name, kwargs
