"""The app's own style sheets parse: every block closed (an unclosed @media after a merge silently
confines every later rule to narrow screens)."""

import re
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parents[1] / "static"


@pytest.mark.parametrize("sheet", sorted(STATIC.rglob("*.css")), ids=lambda p: p.name)
def test_every_block_of_the_style_sheet_is_closed(sheet):
    text = re.sub(r"/\*.*?\*/", "", sheet.read_text(encoding="utf-8"), flags=re.S)
    depth = 0
    for number, line in enumerate(text.splitlines(), 1):
        opens_at_margin = "{" in line and not line[:1].isspace() and not line.startswith("}")
        assert not (opens_at_margin and depth), (
            f"{sheet.name}:{number}: a rule at the margin starts while an earlier block is still open")
        depth += line.count("{") - line.count("}")
        assert depth >= 0, f"{sheet.name}:{number}: a '}}' closes nothing"
    assert depth == 0, f"{sheet.name}: {depth} block(s) never closed"
