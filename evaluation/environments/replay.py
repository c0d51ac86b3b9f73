"""Replay environments: the tools of a gold trajectory, answered from its recorded results (pure).

A call that matches a recorded call (same tool, same arguments) gets the recorded result; the same
call again gets the same result again; anything else is a tool error that says what was recorded,
so a model that strays from the gold path reads why.

>>> env = ReplayEnvironment()
>>> env.reset(recorded=[{"name": "get_weather", "arguments": {"city": "Paris"}, "text": "18C"}])
>>> env._call_tool("get_weather", {"city": "Paris"}).text
'18C'
>>> print(env._call_tool("get_weather", {"city": "Rome"}).text)
Error during execution: no recorded call matches get_weather({"city": "Rome"}); recorded: get_weather({"city": "Paris"})
"""

from __future__ import annotations

import inspect
import json
from typing import Any

from evaluation.environments.base import ERROR_PREFIX, ToolResult


def _key(name: str, arguments: Any) -> str:
    return json.dumps([name, arguments], sort_keys=True, ensure_ascii=False)


def _shown(name: str, arguments: Any) -> str:
    text = json.dumps(arguments, ensure_ascii=False, sort_keys=True)
    return f"{name}({text if len(text) <= 200 else text[:197] + '...'})"


class ReplayEnvironment:
    """Answers calls from recorded ``{"name", "arguments", "text"}`` results (see the module)."""

    def reset(self, recorded: list[dict] | None = None, **row) -> None:
        self._pool = [dict(r) for r in (recorded or [])]
        self._recorded = list(self._pool)
        self._answered: dict[str, str] = {}

    def _call_tool(self, name: str, arguments: Any) -> ToolResult:
        key = _key(name, arguments)
        match = next((r for r in self._pool if _key(r.get("name", ""), r.get("arguments") or {}) == key), None)
        if match is not None:
            self._pool.remove(match)
            self._answered[key] = str(match.get("text", ""))
            return ToolResult(self._answered[key])
        if key in self._answered:
            return ToolResult(self._answered[key])
        shown = "; ".join(_shown(r.get("name", ""), r.get("arguments") or {}) for r in self._recorded[:10]) or "nothing"
        return ToolResult(f"{ERROR_PREFIX}no recorded call matches {_shown(name, arguments)}; recorded: {shown}",
                          ok=False)


_PYTHON_TYPES = {"string": str, "integer": int, "number": float, "boolean": bool, "array": list, "object": dict}


def _tool_method(spec: dict):
    """A method named and documented after a function spec, answering from the replay: what TRL's
    ``environment_factory`` lists as a tool and ``transformers.utils.get_json_schema`` reads back."""
    name = str(spec.get("name", ""))
    params = (spec.get("parameters") or {}).get("properties") or {}
    required = set((spec.get("parameters") or {}).get("required") or [])

    def method(self, **arguments):
        return self._call_tool(name, arguments).text

    annotations, parameters, lines = {}, [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)], []
    for pname, p in params.items():
        kind = p.get("type") if isinstance(p, dict) else None
        annotations[pname] = _PYTHON_TYPES.get(kind if isinstance(kind, str) else "", str)
        default = inspect.Parameter.empty if pname in required else None
        parameters.append(inspect.Parameter(pname, inspect.Parameter.KEYWORD_ONLY, default=default,
                                            annotation=annotations[pname]))
        lines.append(f"    {pname}: {(p.get('description') if isinstance(p, dict) else '') or pname}")
    annotations["return"] = str
    method.__name__ = method.__qualname__ = name
    method.__doc__ = (spec.get("description") or name) + ("\n\nArgs:\n" + "\n".join(lines) if lines else "")
    method.__annotations__ = annotations
    method.__signature__ = inspect.Signature(parameters, return_annotation=str)
    return method


def replay_class(tools: list[dict]) -> type:
    """A replay environment whose tools are methods (one per function spec, OpenAI-wrapped or not),
    for trainers that list an environment's tools from its class (TRL's ``environment_factory``).

    >>> cls = replay_class([{"type": "function", "function": {"name": "get_weather", "description": "The weather.",
    ...     "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "A city."}},
    ...     "required": ["city"]}}}])
    >>> env = cls(); env.reset(recorded=[{"name": "get_weather", "arguments": {"city": "Oslo"}, "text": "-3C"}])
    >>> env.get_weather(city="Oslo")
    '-3C'
    """
    specs = [dict(t.get("function") or t) for t in tools]
    namespace = {s["name"]: _tool_method(s) for s in specs if isinstance(s.get("name"), str) and s["name"].isidentifier()
                 and not s["name"].startswith("_") and s["name"] not in ("reset", "get_reward")}
    return type("Replay", (ReplayEnvironment,), namespace)
