"""The docstring examples of the workbench's and the importer's pure modules run and hold."""

from __future__ import annotations

import doctest

import pytest

from annotate.ingest import sniff
from annotate.pairs import corrections
from annotate.workbench import revisions, workflow


@pytest.mark.parametrize("module", [sniff, workflow, revisions, corrections], ids=lambda m: m.__name__)
def test_the_examples_hold(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
