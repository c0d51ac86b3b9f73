"""The editor's step forms: what each step's form shows, and reading a submitted form back into
an edit (pure; no Django).

A submitted form arrives as ``{name: [values]}`` (``dict(request.POST.lists())``). Field names:
``text``, ``note``, ``train`` (checkbox), ``labels`` (checkboxes), ``call_id``, ``ok`` ("ok" or
"error"), and for tool calls ``name`` (the tool), ``args_mode`` ("form" or "raw"),
``arguments_json`` (raw mode) or one ``arg:<property>`` input per schema property with its widget
in ``argw:<property>`` (form mode).

>>> from annotate.trajectory import Step
>>> schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
>>> call = Step(kind="tool_call", name="get_weather", arguments={"city": "Paris"}, call_id="c1")
>>> form = read_step_form(call, {"name": ["get_weather"], "call_id": ["c1"], "args_mode": ["form"],
...                              "arg:city": [""], "train": ["on"]}, {"get_weather": schema})
>>> form.fields["arguments"], form.errors, form.args.errors_for("city")
({}, {}, ["'city' is a required property"])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from annotate.findings import Finding, argument_errors
from annotate.trajectory import CASE_TYPE_NAMES, Step, Trajectory
from annotate.workbench.argument_form import (EXTRA, WIDGETS, ArgField, argument_fields, errors_by_field,
                                              parse_raw_arguments, raw_text, read_value)

FormData = Mapping[str, list[str]]
KIND_NAMES = {"think": "Reasoning", "tool_call": "Tool call", "tool_result": "Tool result", "answer": "Answer"}


def first(data: FormData, key: str, default: str = "") -> str:
    v = data.get(key)
    if not v:
        return default
    return v[0] if isinstance(v, list) else str(v)


@dataclass
class ArgState:
    """The arguments part of a tool-call form: its mode, inputs and errors."""

    tool: str
    mode: str  # "form" | "raw"
    known_tool: bool
    fields: list[ArgField] = field(default_factory=list)
    raw: str = ""
    other_errors: list[str] = field(default_factory=list)  # errors no single field owns

    @property
    def raw_rows(self) -> int:
        return max(3, min(16, self.raw.count("\n") + 1))

    def errors_for(self, name: str) -> list[str]:
        for f in self.fields:
            if f.name == name:
                return f.errors
        return []

    @property
    def error_count(self) -> int:
        return sum(len(f.errors) for f in self.fields) + len(self.other_errors)


def argument_state(tool: str, schema: dict | None, arguments: Any, mode: str = "form") -> ArgState:
    """The arguments form for saved ``arguments`` (no errors checked yet)."""
    if schema is None or not isinstance(arguments, (dict, type(None))):
        # An unknown tool or non-object arguments: only raw JSON can show them faithfully.
        mode = "raw"
    state = ArgState(tool=tool, mode=mode, known_tool=schema is not None, raw=raw_text(arguments))
    if mode == "form":
        state.fields = argument_fields(schema, arguments or {})
    return state


def read_arguments(data: FormData, tool: str, schema: dict | None, original: Any) -> tuple[Any, ArgState, bool]:
    """Arguments from a submitted form: ``(arguments, state, readable)``.

    ``readable`` is False when an input cannot be read (not a number, broken JSON); the state then
    carries the error next to that input and keeps everything as typed, and ``arguments`` holds
    what could be read (None in raw mode), so the schema can still be checked on the rest.
    """
    mode = first(data, "args_mode", "form")
    if mode == "raw" or schema is None:
        text = first(data, "arguments_json")
        value, err = parse_raw_arguments(text)
        state = ArgState(tool=tool, mode="raw", known_tool=schema is not None, raw=text)
        if err:
            state.other_errors.append(err)
            return None, state, False
        return value, state, True
    fields = argument_fields(schema, original if isinstance(original, dict) else {})
    by_name = {f.name: f for f in fields}
    values: dict[str, Any] = {}
    readable = True
    for f in fields:
        f.value = first(data, f"arg:{f.name}", "")
        # The widget the form was drawn with (after a tool or mode switch it may differ from
        # what the saved arguments suggest): read the text the way it was typed.
        posted = first(data, f"argw:{f.name}")
        if posted in WIDGETS and f.name != EXTRA:
            f.widget = posted
    order = list(original) if isinstance(original, dict) else []
    for f in fields:
        if f.name == EXTRA:
            continue
        if f.value.strip() == "":
            continue
        try:
            values[f.name] = read_value(f.widget, f.value)
        except ValueError as e:
            f.errors.append(str(e))
            readable = False
    extra = by_name.get(EXTRA)
    if extra is not None and extra.value.strip():
        try:
            parsed = read_value("json", extra.value)
        except ValueError as e:
            extra.errors.append(str(e))
            readable = False
        else:
            if not isinstance(parsed, dict):
                extra.errors.append("Other arguments must be a JSON object.")
                readable = False
            else:
                for k, v in parsed.items():
                    if k in by_name:
                        extra.errors.append(f"{k!r} has its own field above.")
                        readable = False
                    else:
                        values[k] = v
    ordered = {k: values[k] for k in order if k in values}
    ordered.update({k: v for k, v in values.items() if k not in ordered})
    state = ArgState(tool=tool, mode="form", known_tool=True, fields=fields, raw=raw_text(ordered))
    return ordered, state, readable


def check_arguments(state: ArgState, schema: dict | None, arguments: Any) -> ArgState:
    """Add the tool schema's errors for ``arguments`` to ``state``, each on its field."""
    if schema is None:
        if state.tool:
            state.other_errors.append(f"{state.tool!r} is not a known tool: its arguments cannot be checked.")
        return state
    if arguments is None:
        return state
    if not isinstance(arguments, dict):
        state.other_errors.append("Arguments must be a JSON object.")
        return state
    errors = argument_errors(schema, arguments)
    if state.mode == "form":
        placed, rest = errors_by_field(errors, [f.name for f in state.fields])
        for f in state.fields:
            if not f.errors:  # an input that could not be read already says why
                f.errors.extend(placed.get(f.name, []))
        other = next((f for f in state.fields if f.name == EXTRA), None)
        if other is not None:
            other.errors.extend(rest)
        else:
            state.other_errors.extend(rest)
    else:
        state.other_errors.extend(f"{p}: {m}" if p else m for p, m in errors)
    return state


@dataclass
class StepForm:
    fields: dict[str, Any]
    errors: dict[str, str]
    args: ArgState | None = None

    @property
    def ok(self) -> bool:
        return not self.errors


def read_step_form(step: Step, data: FormData, schemas: Mapping[str, dict], doc: Trajectory | None = None) -> StepForm:
    """The ``update_step`` fields a submitted step form asks for, and what could not be read.

    ``schemas``: tool name → parameter schema (the trajectory's tools, then the catalog's).
    """
    fields: dict[str, Any] = {"note": first(data, "note"), "train": bool(first(data, "train")),
                              "labels": [x for x in data.get("labels", []) if x]}
    errors: dict[str, str] = {}
    args_state = None
    if step.kind in ("think", "answer", "tool_result"):
        fields["text"] = first(data, "text")
    if step.kind == "tool_result":
        fields["call_id"] = first(data, "call_id").strip()
        fields["ok"] = first(data, "ok", "ok") != "error"
        fields["name"] = step.name
        if doc is not None and fields["call_id"]:
            for _, _, s in doc.steps():
                if s.kind == "tool_call" and s.call_id == fields["call_id"]:
                    fields["name"] = s.name
                    break
    if step.kind == "tool_call":
        tool = first(data, "name", step.name).strip()
        fields["name"] = tool
        fields["call_id"] = first(data, "call_id").strip()
        # The inputs were drawn for ``args_tool`` (the tool chosen when the form was last drawn).
        drawn = first(data, "args_tool", tool)
        original = step.arguments if drawn == step.name else {}
        arguments, args_state, readable = read_arguments(data, drawn, schemas.get(drawn), original)
        args_state.tool = tool
        check_arguments(args_state, schemas.get(tool), arguments)
        if readable:
            fields["arguments"] = arguments
        else:
            errors["arguments"] = "Some arguments cannot be read; see the fields marked below."
    return StepForm(fields, errors, args_state)


# --- what the page shows ------------------------------------------------------------------------------

@dataclass
class LabelChoice:
    name: str
    description: str
    checked: bool


@dataclass
class StepPanel:
    turn: int
    index: int
    step: Step
    findings: list[Finding]
    labels: list[LabelChoice]
    args: ArgState | None = None
    tool_choices: list[tuple[str, list[str]]] = field(default_factory=list)  # (group, names)
    call_ids: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)  # what the form shows (saved or as typed)
    conflict: Any = None  # the Conflict when a save was refused as stale
    merge_base: int | None = None
    both_changed: list[str] = field(default_factory=list)  # fields both people changed
    theirs: Step | None = None  # the other person's version of this step
    gone: bool = False  # the other person deleted this step
    versions: list = field(default_factory=list)  # revisions.FieldChange per field both changed (theirs, mine)
    urls: dict[str, str] = field(default_factory=dict)  # save / check / fields, filled in by the view

    @property
    def key(self) -> str:
        return f"{self.turn}-{self.index}"

    # Positions as text (1-based for people, 0-based for addresses), ready for the template.
    @property
    def turn_no(self) -> str:
        return str(self.turn + 1)

    @property
    def step_no(self) -> str:
        return str(self.index + 1)

    @property
    def address(self) -> str:
        return f"turn={self.turn}&step={self.index}"

    @property
    def kind_name(self) -> str:
        return KIND_NAMES[self.step.kind]


def label_choices(taxonomy: list[dict], chosen: list[str]) -> list[LabelChoice]:
    """The project's labels, then any label the step carries that the taxonomy lacks (kept, not lost)."""
    out = [LabelChoice(lab["name"], lab.get("description", ""), lab["name"] in chosen) for lab in taxonomy]
    known = {lab["name"] for lab in taxonomy}
    out += [LabelChoice(x, "not in the project's taxonomy", True) for x in chosen if x not in known]
    return out


def tool_choices(doc: Trajectory, catalog: list[str], current: str) -> list[tuple[str, list[str]]]:
    offered = [t["name"] for t in doc.tools]
    others = [n for n in catalog if n not in offered]
    groups = [("Offered in this trajectory", offered)]
    if others:
        groups.append(("Project catalog (not offered in this trajectory)", others))
    if current and current not in offered and current not in others:
        groups.append(("Not in the catalog", [current]))
    return groups


def schemas_for(doc: Trajectory, catalog: Mapping[str, dict]) -> dict[str, dict]:
    """Tool name → parameter schema: the trajectory's own specs win over the catalog's."""
    out = {name: spec.get("parameters") or {} for name, spec in catalog.items()}
    out.update({t["name"]: t.get("parameters") or {} for t in doc.tools})
    return out


def step_panel(doc: Trajectory, ti: int, si: int, findings: list[Finding], *, taxonomy: list[dict],
               catalog: Mapping[str, dict], form: StepForm | None = None, mode: str = "form") -> StepPanel:
    """Everything the template needs for one step, showing ``form`` (as submitted) when given."""
    step = doc.turns[ti].steps[si]
    values = dict(form.fields) if form is not None else {}
    shown = {**{"text": step.text, "note": step.note, "train": step.train, "labels": list(step.labels),
                "call_id": step.call_id, "ok": step.ok, "name": step.name}, **values}
    panel = StepPanel(turn=ti, index=si, step=step, findings=[f for f in findings if (f.turn, f.step) == (ti, si)],
                      labels=label_choices(taxonomy, shown["labels"]), values=shown,
                      errors=dict(form.errors) if form is not None else {})
    if step.kind == "tool_call":
        schemas = schemas_for(doc, catalog)
        panel.tool_choices = tool_choices(doc, sorted(catalog), shown["name"])
        if form is not None and form.args is not None:
            panel.args = form.args
        else:
            panel.args = argument_state(step.name, schemas.get(step.name), step.arguments, mode)
            check_arguments(panel.args, schemas.get(step.name), step.arguments)
    if step.kind == "tool_result":
        panel.call_ids = [s.call_id for _, _, s in doc.steps() if s.kind == "tool_call" and s.call_id]
    return panel


def case_type_choices(chosen: list[str], required: list[str]) -> list[tuple[str, str, bool, bool]]:
    """(value, name, checked, required by the guidelines) for the trajectory's case-type boxes."""
    return [(ct, name, ct in chosen, ct in required) for ct, name in CASE_TYPE_NAMES.items()]
