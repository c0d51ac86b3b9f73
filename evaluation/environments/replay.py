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
