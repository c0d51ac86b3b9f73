"""Free-text search over trajectories: what gets indexed and how a query is read (pure; no Django).

The queue searches every user message and every step (reasoning, tool names, arguments, tool
output, answers, notes). ``search_text`` is the text indexed for one trajectory; ``fts_query``
turns what a user typed into an SQLite FTS5 query (every word must occur, each as a prefix, so
``HAT1`` finds ``HAT145``); ``tsquery`` does the same for PostgreSQL's full-text search;
``search_terms`` gives the same words for the portable fallback.

>>> from annotate.trajectory import Trajectory
>>> t = Trajectory.from_dict({"turns": [{"user": "Weather in Paris?", "steps": [
...     {"kind": "tool_call", "name": "get_weather", "arguments": {"city": "Paris"}}]}]})
>>> search_text(t)
'Weather in Paris?\\nget_weather {"city":"Paris"}'
>>> fts_query('paris "get weather"')
'"paris"* AND "get"* AND "weather"*'
"""

from __future__ import annotations

import re

from annotate.ingest.jsontext import dumps
from annotate.trajectory import Trajectory

# Words as FTS5's unicode61 tokenizer sees them: runs of letters and digits.
_WORD = re.compile(r"\w+", re.UNICODE)
MAX_TERMS = 12


def search_text(traj: Trajectory) -> str:
    """Every user message and step of ``traj`` as one text (one line per part)."""
    parts: list[str] = []
    for turn in traj.turns:
        if turn.user:
            parts.append(turn.user)
        for step in turn.steps:
            if step.kind == "tool_call":
                args = dumps(step.arguments) if step.arguments not in (None, {}) else ""
                parts.append(f"{step.name} {args}".strip())
            elif step.text:
                parts.append(step.text)
            if step.note:
                parts.append(step.note)
    return "\n".join(parts)


def search_terms(query: str) -> list[str]:
    """The words of a query, at most ``MAX_TERMS`` of them.

    >>> search_terms("  HAT145  <script>  ")
    ['HAT145', 'script']
    """
    return _WORD.findall(query)[:MAX_TERMS]


def tsquery(query: str) -> str:
    """A PostgreSQL ``to_tsquery`` expression: every word, each as a prefix.

    The words are runs of letters and digits, so no tsquery syntax leaks through.
    Returns "" when the query has no words.

    >>> tsquery('paris "get weather" <b>')
    'paris:* & get:* & weather:* & b:*'
    """
    return " & ".join(f"{term}:*" for term in search_terms(query))


def fts_query(query: str) -> str:
    """An FTS5 MATCH expression: each word quoted (so no FTS syntax leaks through) and a prefix.

    Each quoted term is one token as FTS5's tokenizer reads it (which splits at ``_``): the index
    keeps no positions, so it answers no phrase. Returns "" when the query has no words.

    >>> fts_query("get_weather HAT1")
    '"get"* AND "weather"* AND "HAT1"*'
    """
    return " AND ".join(f'"{piece}"*' for term in search_terms(query) for piece in term.split("_") if piece)
