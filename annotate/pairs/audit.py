"""The audit of one rendered DPO pair: the same prompt on both sides, different completions, within the length (pure).

``training.export`` calls it on every pair of a DPO snapshot, with the renders it made.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AuditProblem:
    code: str
    message: str
    severity: str = "error"

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "severity": self.severity}


def audit_rendered_pair(prompt: str, prompt_chosen: str, prompt_rejected: str, *,
                        tokens_chosen: int | None = None, tokens_rejected: int | None = None,
                        max_length: int | None = None) -> list[AuditProblem]:
    """Check one rendered DPO pair: same prompt on both sides, different completions, fits the length.

    ``prompt`` is the context rendered with the generation prompt; ``prompt_chosen`` and
    ``prompt_rejected`` the context plus each side, rendered in one go (as DPOTrainer does). Token
    counts are of the full prompt+side sequences. Rendering failures are the caller's to report
    (code ``render_failed``), since only the caller holds the template.

    >>> [p.code for p in audit_rendered_pair("P:", "P: yes", "P: yes")]
    ['identical_sides']
    >>> [p.code for p in audit_rendered_pair("P:", "P: yes", "Q: no")]
    ['prompt_differs']
    """
    problems: list[AuditProblem] = []
    for side, text in (("chosen", prompt_chosen), ("rejected", prompt_rejected)):
        if not text.startswith(prompt):
            at = next((k for k, (x, y) in enumerate(zip(prompt, text)) if x != y), min(len(prompt), len(text)))
            problems.append(AuditProblem(
                "prompt_differs", f"the {side} render does not start with the prompt render (they part at "
                f"character {at}: {prompt[at:at + 40]!r} vs {text[at:at + 40]!r}), so the two sides would not "
                "share the same prompt"))
    if prompt_chosen[len(prompt):] == prompt_rejected[len(prompt):]:
        problems.append(AuditProblem("identical_sides", "chosen and rejected render to the same text"))
    if max_length is not None:
        for side, n in (("chosen", tokens_chosen), ("rejected", tokens_rejected)):
            if n is not None and n > max_length:
                problems.append(AuditProblem(
                    "too_long", f"prompt + {side} is {n} tokens, over max_length {max_length}: "
                    "DPOTrainer would cut the end of the completion"))
    return problems
