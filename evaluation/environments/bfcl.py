"""BFCL's multi-turn tool classes as environments (pure; the classes load from the unpacked
``bfcl-eval`` wheel through :mod:`evaluation.bfcl_package`, in the episode's child process).

An item involves several classes at once (a file system and a posting API, say), so the environment
of an item is a class made for its ``involved_classes``: each public method of each class becomes a
method of the composite (a later class's method wins a name clash, as in BFCL's executor), so TRL's
``environment_factory`` and :func:`~evaluation.environments.base.tool_names` see ordinary methods.
``reset(initial_config=..., long_context=...)`` builds fresh instances and loads each stateful one's
scenario (a deep copy, as BFCL does). The state compared after a turn is every instance's public
attributes (BFCL's ``state_checker``).

The tool schemas the model sees are BFCL's own function docs (``multi_turn_func_doc``), not read
from the docstrings: they are what the benchmark shows every model.
"""

from __future__ import annotations

import copy
import functools
import importlib
import json
from typing import Any

from evaluation import bfcl_package
from annotate.findings import bfcl_types_to_json_schema

PACKAGE = "bfcl_eval.eval_checker.multi_turn_eval.func_source_code"
# BFCL's class -> module (bfcl_eval/constants/executable_backend_config.py: CLASS_FILE_PATH_MAPPING)
# and class -> function-doc file (MULTI_TURN_FUNC_DOC_FILE_MAPPING), for the multi-turn suite.
CLASSES = {
    "GorillaFileSystem": ("gorilla_file_system", "gorilla_file_system.json"),
    "MathAPI": ("math_api", "math_api.json"),
    "MessageAPI": ("message_api", "message_api.json"),
    "TwitterAPI": ("posting_api", "posting_api.json"),
    "TicketAPI": ("ticket_api", "ticket_api.json"),
    "TradingBot": ("trading_bot", "trading_bot.json"),
    "TravelAPI": ("travel_booking", "travel_booking.json"),
    "VehicleControlAPI": ("vehicle_control", "vehicle_control.json"),
}
STATELESS = ("MathAPI",)  # BFCL's STATELESS_CLASSES: no scenario to load


def bfcl_class(name: str) -> type:
    if name not in CLASSES:
        raise ValueError(f"unknown BFCL class {name!r}; one of {', '.join(CLASSES)}")
    bfcl_package.importable()
    return getattr(importlib.import_module(f"{PACKAGE}.{CLASSES[name][0]}"), name)


def _forward(class_name: str, method_name: str, func):
    @functools.wraps(func)  # name, docstring and signature (through __wrapped__) of BFCL's method
    def method(self, *args, **kwargs):
        return getattr(self._instances[class_name], method_name)(*args, **kwargs)
    return method


def _reset(self, initial_config: dict | None = None, long_context: bool = False, **row) -> None:
    config = initial_config or {}
    self._instances = {}
    for name in self._classes:
        instance = bfcl_class(name)()
        if name not in STATELESS:
            instance._load_scenario(copy.deepcopy(config.get(name, {})), long_context=long_context)
        self._instances[name] = instance


@functools.lru_cache(maxsize=64)
def _composite(classes: tuple[str, ...]) -> type:
    namespace: dict[str, Any] = {"_classes": classes, "reset": _reset, "__doc__": f"BFCL: {', '.join(classes)}",
                                 "_state_instances": lambda self: dict(self._instances)}
    for class_name in classes:
        cls = bfcl_class(class_name)
        for attr in dir(cls):
            func = getattr(cls, attr)
            if not attr.startswith("_") and callable(func) and attr not in ("reset", "get_reward"):
                namespace[attr] = _forward(class_name, attr, func)
    return type("BFCL_" + "_".join(classes), (), namespace)


def environment_class(involved_classes: list[str]) -> type:
    """The composite environment class of an item's ``involved_classes`` (made once per set)."""
    return _composite(tuple(involved_classes))


def func_docs(involved_classes: list[str]) -> list[dict]:
    """BFCL's function docs for these classes, as OpenAI function specs (BFCL's types mapped to JSON
    Schema's), read from the wheel's data folder (no BFCL code runs)."""
    out = []
    for name in involved_classes:
        if name not in CLASSES:
            raise ValueError(f"unknown BFCL class {name!r}; one of {', '.join(CLASSES)}")
        path = bfcl_package.data_file(f"multi_turn_func_doc/{CLASSES[name][1]}")
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                doc = json.loads(line)
                doc["parameters"] = bfcl_types_to_json_schema(doc.get("parameters") or {})
                doc.pop("response", None)
                out.append({"type": "function", "function": doc})
    return out
