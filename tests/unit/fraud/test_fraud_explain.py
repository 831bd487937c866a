"""Occlusion explanations: the rows the model scores, the factors read back from its answers."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from services.fraud.explain import Factor, Reference, reference_from_json, verdicts

NAMES = ("amount", "small_payments", "km")
TYPICAL = np.array([40.0, 0.0, 2.0], dtype=np.float32)
REFERENCE = Reference(NAMES, TYPICAL)


def matrix(*rows: list[float]) -> np.ndarray:
    return np.array(rows, dtype=np.float32)


def test_rows_are_each_vector_then_one_copy_per_feature_made_typical() -> None:
    vectors = matrix([900.0, 3.0, 800.0], [10.0, 1.0, 5.0])
    rows = REFERENCE.rows(vectors)
    assert rows.dtype == np.float32
    np.testing.assert_array_equal(rows, matrix(
        [900.0, 3.0, 800.0],  # the first vector as it is
        [40.0, 3.0, 800.0],   # amount made typical
        [900.0, 0.0, 800.0],  # small_payments made typical
        [900.0, 3.0, 2.0],    # km made typical
        [10.0, 1.0, 5.0],     # the second vector as it is
        [40.0, 1.0, 5.0],
        [10.0, 0.0, 5.0],
        [10.0, 1.0, 2.0],
    ))


def test_rows_leave_the_vectors_untouched() -> None:
    vectors = matrix([900.0, 3.0, 800.0])
    REFERENCE.rows(vectors)
    np.testing.assert_array_equal(vectors, matrix([900.0, 3.0, 800.0]))


def test_rows_of_no_vectors_are_no_rows() -> None:
    assert REFERENCE.rows(np.empty((0, 3), dtype=np.float32)).shape == (0, 3)


def test_verdicts_list_the_features_that_raised_the_score_strongest_first() -> None:
    vectors = matrix([900.0, 3.0, 800.0], [10.0, 1.0, 5.0])
    probabilities = np.array([
        0.9, 0.8, 0.4, 0.95,    # amount +0.1, small_payments +0.5, km -0.05
        0.2, 0.2, 0.1, 0.15,    # amount 0, small_payments +0.1, km +0.05
    ])
    first, second = verdicts(vectors, probabilities, 4, REFERENCE, top=3)
    assert (first.score, first.version) == (0.9, 4)
    assert [replace(f, effect=round(f.effect, 4)) for f in first.factors] == [
        Factor("small_payments", 3.0, 0.0, 0.5), Factor("amount", 900.0, 40.0, 0.1)]
    assert second.score == 0.2
    assert [(f.feature, round(f.effect, 4)) for f in second.factors] == [
        ("small_payments", 0.1), ("km", 0.05)]


def test_verdicts_keep_only_the_top_factors() -> None:
    probabilities = np.array([0.9, 0.8, 0.4, 0.7])
    (verdict,) = verdicts(matrix([900.0, 3.0, 800.0]), probabilities, 1, REFERENCE, top=1)
    assert [f.feature for f in verdict.factors] == ["small_payments"]
    (none,) = verdicts(matrix([900.0, 3.0, 800.0]), probabilities, 1, REFERENCE, top=0)
    assert none.factors == ()


def test_a_score_no_feature_raised_has_no_factors() -> None:
    probabilities = np.array([0.3, 0.3, 0.5, 0.9])  # no change, then two rises when typical
    (verdict,) = verdicts(matrix([40.0, 0.0, 2.0]), probabilities, 1, REFERENCE, top=3)
    assert verdict.score == 0.3
    assert verdict.factors == ()


def test_without_a_reference_each_probability_is_one_vectors_score_without_factors() -> None:
    found = verdicts(matrix([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]), np.array([0.25, 0.75]), 2, None,
                     top=3)
    assert [(v.score, v.version, v.factors) for v in found] == [(0.25, 2, ()), (0.75, 2, ())]


def test_a_reference_is_read_in_the_models_feature_order() -> None:
    reference = reference_from_json({"feature_names": list(NAMES), "values": [40, 0, 2]}, NAMES)
    assert reference.names == NAMES
    assert reference.values.dtype == np.float32
    np.testing.assert_array_equal(reference.values, TYPICAL)


@pytest.mark.parametrize("stored", [("small_payments", "amount", "km"), ("amount", "km"),
                                    ("amount", "small_payments", "km", "extra")])
def test_a_reference_in_another_feature_order_is_refused(stored: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="differ from the model's"):
        reference_from_json({"feature_names": list(stored), "values": [0.0] * len(stored)},
                            NAMES)
