from __future__ import annotations

from django import forms

from annotate import formats

IMPORT_FORMATS = [("auto", "Detect automatically")] + [(f.name, f.title or f.name) for f in formats.FORMATS.values()]


class ImportForm(forms.Form):
    file = forms.FileField(help_text="JSON array or JSON Lines, UTF-8.")
    format = forms.ChoiceField(choices=IMPORT_FORMATS, initial="auto")
    answers = forms.FileField(required=False, help_text="BFCL only: the possible-answer file, stored as the gold reference.")
    tools = forms.FileField(required=False, help_text="A JSON list of tool specs for records that carry none "
                                                      "(e.g. tau-bench's airline_tools.json).")
    skip_invalid = forms.BooleanField(required=False, help_text="Import the valid records and report the rest. "
                                      "Without it, a file with any invalid record imports nothing.")


class QueueFilterForm(forms.Form):
    """The queue's filters and sort order (GET parameters; every one optional)."""

    SORTS = [
        ("id", "Oldest first"), ("-id", "Newest first"), ("-updated_at", "Recently edited"),
        ("updated_at", "Least recently edited"), ("-finding_count", "Most findings"),
        ("finding_count", "Fewest findings"), ("-step_count", "Most steps"), ("step_count", "Fewest steps"),
        ("title", "Title"), ("-title", "Title, Z to A"),
    ]

    q = forms.CharField(required=False, max_length=200, label="Search",
                        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Words in any step"}))
    status = forms.ChoiceField(required=False)
    case_type = forms.ChoiceField(required=False, label="Case type")
    label = forms.ChoiceField(required=False, label="Error label")
    assignee = forms.ChoiceField(required=False)
    source = forms.CharField(required=False, max_length=300)
    split = forms.ChoiceField(required=False)
    sort = forms.ChoiceField(required=False, choices=SORTS)

    def __init__(self, data, *, statuses, case_types, labels, members, splits):
        super().__init__(data)
        self.fields["status"].choices = [("", "any")] + list(statuses)
        self.fields["case_type"].choices = [("", "any")] + list(case_types)
        self.fields["label"].choices = [("", "any")] + [(x, x) for x in labels]
        self.fields["assignee"].choices = ([("", "anyone"), ("me", "me"), ("none", "nobody")]
                                           + [(str(u.pk), u.get_username()) for u in members])
        self.fields["split"].choices = [("", "any")] + list(splits)


class AssignForm(forms.Form):
    """Bulk assignment; the trajectory ids come as repeated ``ids`` values (checkboxes)."""

    assignee = forms.ChoiceField(choices=[], required=False, label="Assign to")

    def __init__(self, data, *, members):
        super().__init__(data)
        self.fields["assignee"].choices = [("", "nobody")] + [(str(u.pk), u.get_username()) for u in members]


class TransitionForm(forms.Form):
    action = forms.ChoiceField(choices=[(a, a) for a in ("submit", "approve", "reject", "reopen")])
    comment = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 3}))
    base_version = forms.IntegerField(required=False, min_value=1)
