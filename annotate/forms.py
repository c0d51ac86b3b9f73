from __future__ import annotations

from django import forms

IMPORT_FORMATS = [
    ("auto", "Detect automatically"),
    ("raw", "Raw annotation (turns / steps / role-tagged messages)"),
    ("messages", "OpenAI / TRL messages"),
    ("sharegpt", "ShareGPT (LLaMA-Factory)"),
    ("bfcl", "BFCL question file"),
    ("tau_bench", "tau-bench trajectories"),
    ("toolrl", "ToolRL rows"),
]


class ImportForm(forms.Form):
    file = forms.FileField(help_text="JSON array or JSON Lines, UTF-8.")
    format = forms.ChoiceField(choices=IMPORT_FORMATS, initial="auto")
    answers = forms.FileField(required=False, help_text="BFCL only: the possible-answer file, stored as the gold reference.")
    skip_invalid = forms.BooleanField(required=False, help_text="Import the valid records and report the rest. "
                                      "Without it, a file with any invalid record imports nothing.")
