"""Agreement figures against values computed by hand on small tables (annotate.agreement.figures)."""

import pytest

from annotate.agreement.figures import (StepRating, Version, agreement, alpha, cohen_kappa, field_agreement,
                                        fleiss_kappa, label_matrix, observed_agreement)


def test_two_annotators_on_four_units_match_the_hand_computed_values():
    # A = 1 1 0 0, B = 1 0 0 0. Cohen: po = 3/4, pe = .5*.25 + .5*.75 = 1/2, kappa = 1/2.
    # Krippendorff: n = 8 values (3 ones, 5 zeros); Do = 2/8; De = 2*3*5/(8*7) = 30/56; alpha = 8/15.
    # Fleiss: P_bar = 3/4; p1 = 3/8, p0 = 5/8, Pe = 34/64; kappa = (3/4 - 34/64) / (30/64) = 7/15.
    m = [[1, 1, 0, 0], [1, 0, 0, 0]]
    assert cohen_kappa(*m) == pytest.approx(0.5)
    assert alpha(m) == pytest.approx(8 / 15)
    assert fleiss_kappa(m) == pytest.approx(7 / 15)
    assert observed_agreement(m) == pytest.approx(0.75)


def test_perfect_agreement_is_one():
    m = [[1, 0, 1], [1, 0, 1]]
    assert alpha(m) == pytest.approx(1.0)
    assert cohen_kappa(*m) == pytest.approx(1.0)
    assert fleiss_kappa(m) == pytest.approx(1.0)


def test_a_label_never_used_has_no_coefficient_but_full_observed_agreement():
    # Every rating 0: the expected disagreement is 0, so alpha and kappa are undefined (0/0).
    m = [[0, 0, 0], [0, 0, 0]]
    assert alpha(m) is None and cohen_kappa(*m) is None and fleiss_kappa(m) is None
    assert observed_agreement(m) == 1.0


def test_all_annotators_disagreeing():
    # Two annotators, always opposite: Cohen po = 0, pe = 1/2, kappa = -1;
    # Krippendorff n = 4 (2 ones, 2 zeros), Do = 1, De = 2*2*2/(4*3) = 2/3, alpha = -1/2; Fleiss -1.
    m = [[1, 0], [0, 1]]
    assert cohen_kappa(*m) == pytest.approx(-1.0)
    assert alpha(m) == pytest.approx(-0.5)
    assert fleiss_kappa(m) == pytest.approx(-1.0)
    # Three annotators, three categories, every unit all different:
    # n = 6, each category twice; Do = 1; De = (36 - 12) / 30 = 0.8; alpha = -1/4.
    # Fleiss: P_i = 0; p_j = 1/3, Pe = 1/3; kappa = -1/2.
    m3 = [[1, 2], [2, 3], [3, 1]]
    assert alpha(m3) == pytest.approx(-0.25)
    assert fleiss_kappa(m3) == pytest.approx(-0.5)


def step(pos, labels=(), call_id="", **kw):
    return StepRating(0, pos, call_id, frozenset(labels), **kw)


def test_missing_versions_are_missing_ratings_not_no_label():
    # Item 1: a and b; item 2: a and c (b's version missing, c's missing on item 1).
    items = {
        1: {"a": Version([step(0, ["L"]), step(1)]), "b": Version([step(0, ["L"]), step(1)])},
        2: {"a": Version([step(0, ["L"])]), "c": Version([step(0)])},
    }
    m = label_matrix(items, "L", ["a", "b", "c"])
    assert m == [[1, 0, 1], [1, 0, None], [None, None, 0]]
    # Pairable values: (1,1) (0,0) (1,0): n = 6, 3 ones, 3 zeros; Do = 2/6; De = 18/30; alpha = 4/9.
    assert alpha(m) == pytest.approx(4 / 9)
    assert fleiss_kappa(m) is None  # no unit that all three rated
    # Treating missing as "no label" would give a different (wrong) figure.
    assert alpha([[1, 0, 1], [1, 0, 0], [0, 0, 0]]) != pytest.approx(4 / 9)


def test_steps_align_by_position_and_call_id():
    # Same position, different call ids: two units, each rated by one annotator only (no pairable unit).
    items = {1: {"a": Version([step(0, ["L"], call_id="c1")]), "b": Version([step(0, ["L"], call_id="c2")])}}
    assert label_matrix(items, "L", ["a", "b"]) == [[1, None], [None, 1]]
    assert alpha(label_matrix(items, "L", ["a", "b"])) is None


def test_field_agreement_exact_and_after_json_normalisation():
    a = step(0, call_id="c", kind="tool_call", arguments={"q": "x", "n": 1, "f": {"a": 1, "b": 2}, "j": '{"k": 1}'})
    b = step(0, call_id="c", kind="tool_call", arguments={"n": 1.0, "q": "x", "f": {"b": 2, "a": 1}, "j": {"k": 1}})
    c = step(0, call_id="c", kind="tool_call", arguments={"q": "y"})
    fields = field_agreement({1: {"a": Version([a]), "b": Version([b])}})
    assert fields["q"] == {"pairs": 1, "exact": 1.0, "normalised": 1.0}
    assert fields["n"] == {"pairs": 1, "exact": 0.0, "normalised": 1.0}
    assert fields["f"] == {"pairs": 1, "exact": 0.0, "normalised": 1.0}
    assert fields["j"] == {"pairs": 1, "exact": 0.0, "normalised": 1.0}
    three = field_agreement({1: {"a": Version([a]), "b": Version([b]), "c": Version([c])}})
    # Pairs a-b, a-c, b-c: "q" matches in a-b only; "n" is missing from c (a mismatch in a-c and b-c).
    assert three["q"]["pairs"] == 3 and three["q"]["exact"] == pytest.approx(1 / 3)
    assert three["n"]["normalised"] == pytest.approx(1 / 3)


def test_the_report_has_per_label_case_type_and_pair_figures_with_intervals():
    items = {}
    for i in range(6):
        agree = i % 3 != 0
        items[i] = {"a": Version([step(0, ["L"]), step(1)], case_types=("tool_required",)),
                    "b": Version([step(0, ["L"] if agree else []), step(1)], case_types=("tool_required",))}
    report = agreement(items, ["L", "never"], rounds=50)
    assert report["items"] == 6 and report["annotators"] == ["a", "b"]
    assert report["labels"]["never"]["alpha"] is None and report["labels"]["never"]["observed"] == 1.0
    # L: a = 1 x6, b = 1 1 0 1 1 0 (i = 0, 3 disagree) on step 0; step 1 all 0.
    assert report["labels"]["L"]["observed"] == pytest.approx(10 / 12)
    low, high = report["labels"]["L"]["interval"]
    assert low <= report["labels"]["L"]["alpha"] <= high
    assert set(report["case_types"]) == {"tool_required"}
    assert report["pairs"][0]["a"] == "a" and report["pairs"][0]["items"] == 6
