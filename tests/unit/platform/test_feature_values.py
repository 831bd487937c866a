"""Feature values: what each type accepts, and that its stored bytes read back unchanged."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.common.features.values import (
    FeatureType,
    InvalidFeatureValue,
    coerce,
    decode,
    encode,
    zero,
)


@pytest.mark.parametrize(("dtype", "value"), [
    (FeatureType.INT64, -(2**63)),
    (FeatureType.INT64, 2**63 - 1),
    (FeatureType.FLOAT64, 0.1 + 0.2),
    (FeatureType.FLOAT64, -1e-300),
    (FeatureType.STRING, "Zürich, 東京"),
    (FeatureType.STRING, ""),
    (FeatureType.BOOL, True),
    (FeatureType.BOOL, False),
])
def test_scalar_values_read_back_exactly(dtype: FeatureType, value: object) -> None:
    stored = coerce(dtype, value)

    assert decode(dtype, encode(dtype, stored)) == value


def test_nan_and_infinity_survive_a_round_trip() -> None:
    for value in (math.nan, math.inf, -math.inf):
        back = decode(FeatureType.FLOAT64, encode(FeatureType.FLOAT64, value))
        assert math.isnan(back) if math.isnan(value) else back == value  # type: ignore[arg-type]


def test_vectors_read_back_as_read_only_float32() -> None:
    stored = coerce(FeatureType.FLOAT_VECTOR, [0.1, 2.0, -3.5], dim=3)

    back = decode(FeatureType.FLOAT_VECTOR, encode(FeatureType.FLOAT_VECTOR, stored))

    assert isinstance(back, np.ndarray)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, np.array([0.1, 2.0, -3.5], dtype=np.float32))
    with pytest.raises(ValueError, match="read-only"):
        back[0] = 1.0


def test_numbers_are_stored_as_decimal_text_and_vectors_as_little_endian_float32() -> None:
    assert encode(FeatureType.INT64, 42) == b"42"
    assert encode(FeatureType.FLOAT64, 12.5) == b"12.5"
    assert encode(FeatureType.BOOL, True) == b"1"
    assert encode(FeatureType.FLOAT_VECTOR, coerce(FeatureType.FLOAT_VECTOR, [1.0], dim=1)) == (
        b"\x00\x00\x80\x3f")


def test_an_int_is_accepted_as_a_float_and_numpy_scalars_as_python_values() -> None:
    assert coerce(FeatureType.FLOAT64, 3) == 3.0
    assert type(coerce(FeatureType.FLOAT64, 3)) is float
    assert type(coerce(FeatureType.INT64, np.int32(7))) is int
    assert type(coerce(FeatureType.BOOL, np.bool_(True))) is bool


@pytest.mark.parametrize(("dtype", "value"), [
    (FeatureType.INT64, True),  # bool is an int in Python, never a count
    (FeatureType.INT64, 1.0),
    (FeatureType.INT64, 2**63),
    (FeatureType.INT64, "1"),
    (FeatureType.FLOAT64, False),
    (FeatureType.FLOAT64, "1.5"),
    (FeatureType.FLOAT64, None),
    (FeatureType.STRING, 5),
    (FeatureType.BOOL, 1),
    (FeatureType.BOOL, "true"),
])
def test_a_value_of_the_wrong_type_is_refused(dtype: FeatureType, value: object) -> None:
    with pytest.raises(InvalidFeatureValue):
        coerce(dtype, value)


@pytest.mark.parametrize("value", [[1.0, 2.0], [[1.0, 2.0, 3.0]], ["a", "b", "c"], "abc", 1.0])
def test_a_vector_of_the_wrong_shape_or_content_is_refused(value: object) -> None:
    with pytest.raises(InvalidFeatureValue):
        coerce(FeatureType.FLOAT_VECTOR, value, dim=3)


def test_each_type_has_a_zero_default() -> None:
    assert [zero(t) for t in (FeatureType.INT64, FeatureType.FLOAT64, FeatureType.STRING,
                              FeatureType.BOOL)] == [0, 0.0, "", False]
    np.testing.assert_array_equal(zero(FeatureType.FLOAT_VECTOR, dim=3), np.zeros(3))
