"""Agreement figures against values computed by hand (the working is in each test's comment)."""

import pytest

from annotate.agreement.measures import align_steps, field_agreement, fleiss_kappa, label_agreement

L = "wrong_tool"


def units(*rows):
    """rows of per-annotator values: 1 (label), 0 (no label), None (no version of that step)."""
    names = "abc"
    return [{names[i]: (None if v is None else ({L} if v else set())) for i, v in enumerate(row)} for row in rows]


def test_perfect_agreement_is_one_on_every_measure():
    r = label_agreement(units((1, 1), (0, 0), (1, 1), (0, 0)), [L], draws=200)[L]
    assert (r.alpha, r.fleiss, r.observed, r.pairs[("a", "b")]) == (1.0, 1.0, 1.0, 1.0)
    assert r.alpha_interval == (1.0, 1.0)


def test_annotators_who_always_disagree_get_negative_figures():
    # coincidences o10 = o01 = 4, n = 8, n0 = n1 = 4: Do = 1, De = 2*16/56 -> alpha = 1 - 56/32 = -0.75
    # Cohen: po = 0, pe = .5*.5 + .5*.5 = .5 -> kappa = -1
    r = label_agreement(units((1, 0), (0, 1), (1, 0), (0, 1)), [L], draws=0)[L]
    assert r.alpha == pytest.approx(-0.75) and r.pairs[("a", "b")] == pytest.approx(-1.0)
    assert r.observed == 0.0


def test_a_label_nobody_used_is_undefined_not_perfect():
    r = label_agreement(units((0, 0), (0, 0), (1, 1)), [L, "asked_needlessly"], draws=0)
    assert r["asked_needlessly"].alpha is None and r["asked_needlessly"].pairs[("a", "b")] is None
    assert "never used" in r["asked_needlessly"].note
    assert r[L].alpha == 1.0  # the other label is unaffected


def test_missing_versions_count_only_where_two_annotators_have_the_step():
    # a,b,c; u1 (1,1,-), u2 (0,0,0), u3 (1,0,1), u4 (-,0,0), u5 (1,-,-) (one annotator: left out).
    # Coincidences (each ordered pair weighted 1/(m-1)): o11 = 2 + 1 = 3, o00 = 3 + 2 = 5,
    # o10 = o01 = 1; n = 10, n1 = 4, n0 = 6: Do = .2, De = 48/90 -> alpha = 1 - .2/(48/90) = .625.
    # Fleiss over the units all three have (u2, u3): rows [3,0], [1,2]: P = (1 + 1/3)/2, Pe = 5/9 -> .25.
    # Cohen a-b over u1..u3: a=[1,0,1], b=[1,0,0]: po = 2/3, pe = 4/9 -> kappa = .4.
    r = label_agreement(units((1, 1, None), (0, 0, 0), (1, 0, 1), (None, 0, 0), (1, None, None)), [L], draws=0)[L]
    assert r.units == 4
    assert r.alpha == pytest.approx(0.625)
    assert r.fleiss == pytest.approx(0.25)
    assert r.pairs[("a", "b")] == pytest.approx(0.4)


def test_one_annotator_alone_has_no_agreement():
    r = label_agreement(units((1,), (0,)), [L], draws=0)[L]
    assert r.alpha is None and r.note == "needs two annotators on the same steps"


def test_the_bootstrap_interval_holds_the_estimate_and_is_repeatable():
    data = units(*[(1, 1), (0, 0), (1, 0), (0, 0), (1, 1), (0, 1), (0, 0), (1, 1)] * 3)
    first = label_agreement(data, [L], draws=300, seed=7)[L]
    lo, hi = first.alpha_interval
    assert lo < first.alpha < hi
    assert label_agreement(data, [L], draws=300, seed=7)[L].alpha_interval == (lo, hi)


def test_fleiss_is_undefined_when_rows_hold_different_rater_counts():
    assert fleiss_kappa([[2, 0], [1, 2]]) is None


def test_call_arguments_agree_after_normalisation_when_only_spacing_or_key_order_differs():
    got = field_agreement([
        {"a": '{"city": "Paris", "unit": "c"}', "b": '{"unit":"c","city":"Paris"}', "c": None},
        {"a": '{"city": "Lyon"}', "b": '{"city": "Lyon"}', "c": '{"city": "Nice"}'},
    ])
    # pairs: unit 1: (a,b); unit 2: (a,b), (a,c), (b,c) -> 4; exact: 1 of 4; normalised: 2 of 4
    assert got == {"pairs": 4, "exact": 0.25, "normalised": 0.5}


def test_steps_align_by_call_id_even_when_an_annotator_reordered_them():
    a = [{"kind": "tool_call", "call_id": "c1", "name": "x"}, {"kind": "tool_call", "call_id": "c2", "name": "y"},
         {"kind": "answer"}]
    b = [{"kind": "tool_call", "call_id": "c2", "name": "y"}, {"kind": "answer"}]
    rows = align_steps({"a": a, "b": b})
    assert [(r["a"] and r["a"].get("name"), r["b"] and r["b"].get("name")) for r in rows] == [
        ("x", None), ("y", "y"), (None, None)]
    assert rows[2]["a"]["kind"] == rows[2]["b"]["kind"] == "answer"
