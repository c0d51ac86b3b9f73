"""Packed SFT: TRL's padding-free packing with the rows' own labels (pure; nothing heavy imported).

With ``TrainSettings.packing`` the runner passes ``sft_config_kwargs()`` to ``SFTConfig``. TRL then
packs the tokenized rows best-fit-decreasing (``bfd``) into sequences of up to ``max_length``
tokens: a row is never split across two sequences, and one longer than ``max_length`` is cut at
the end, as without packing. Its padding-free collator lays a batch's rows end to end in one
sequence with position ids restarting at 0 for each row; transformers builds the attention mask
from those (a token attends only to its own row). The labels are the rows' own (a tokenized
snapshot's ``labels`` column: our masks, bit for bit); the collator also sets each row's first
label to -100, a token no loss targets anyway (a token is predicted from the ones before it), so
the last token of a row is never trained to predict the first of the next.

``unpack_batch`` reads a collated batch back as its rows: the tests compare it, token by token,
with the unpacked rows.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

IGNORE = -100  # the label of a token outside the loss


def sft_config_kwargs() -> dict[str, Any]:
    """The ``SFTConfig`` arguments of packed SFT (on top of the runner's others).

    With no padding left, every input token is a real one: tokens/s counts them all.

    >>> sft_config_kwargs()["packing_strategy"]
    'bfd'
    """
    return {"packing": True, "packing_strategy": "bfd", "padding_free": True, "include_num_input_tokens_seen": "all"}


def packed_rows(seq_lengths: Iterable[Sequence[int]]) -> int:
    """How many rows the packed sequences hold, from TRL's ``seq_lengths`` column.

    >>> packed_rows([[4], [3, 1], [2]])
    4
    """
    return sum(len(lengths) for lengths in seq_lengths)


def has_supervised_token(label_rows: Iterable[Sequence[int]]) -> bool:
    """Whether any row keeps a token in the loss (packing keeps rows that truncation emptied).

    >>> has_supervised_token([[-100, -100], [-100, 7]])
    True
    """
    return any(label != IGNORE for labels in label_rows for label in labels)


def unpack_batch(input_ids: Sequence[int], labels: Sequence[int], position_ids: Sequence[int]) -> list[dict]:
    """The rows of one padding-free sequence: a new row starts wherever the position id is 0.

    >>> unpack_batch([5, 6, 7, 8, 9], [-100, 6, -100, -100, 9], [0, 1, 0, 1, 2])
    [{'input_ids': [5, 6], 'labels': [-100, 6]}, {'input_ids': [7, 8, 9], 'labels': [-100, -100, 9]}]
    """
    if not len(input_ids) == len(labels) == len(position_ids):
        raise ValueError(f"lengths differ: {len(input_ids)} input ids, {len(labels)} labels, "
                         f"{len(position_ids)} position ids")
    starts = [i for i, p in enumerate(position_ids) if p == 0] + [len(position_ids)]
    return [{"input_ids": list(input_ids[a:b]), "labels": list(labels[a:b])} for a, b in zip(starts, starts[1:])
            if b > a]
