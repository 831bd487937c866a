"""Feature value types and their byte encoding: the one place that knows how values are stored."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]
FeatureValue = int | float | str | bool | Vector
"""What a read returns. Vectors come back read-only: copy one before changing it."""

FeatureInput = FeatureValue | Sequence[float]
"""What a write accepts: a vector may also be given as a list of floats."""

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
VECTOR_DTYPE = np.dtype("<f4")  # float32 little-endian, whatever the machine's byte order


class FeatureType(StrEnum):
    INT64 = "int64"
    FLOAT64 = "float64"
    STRING = "string"
    BOOL = "bool"
    FLOAT_VECTOR = "float_vector"


class InvalidFeatureValue(ValueError):
    """A value that does not fit its feature's declared type (a caller bug, never retried)."""


def coerce(dtype: FeatureType, value: object, dim: int = 0) -> FeatureValue:
    """The value as its feature type stores it, or InvalidFeatureValue."""
    if dtype is FeatureType.FLOAT_VECTOR:
        return _vector(value, dim)
    # bool is an int subclass in Python; a bool where a number is declared is always a bug.
    if isinstance(value, bool | np.bool_):
        if dtype is FeatureType.BOOL:
            return bool(value)
    elif isinstance(value, int | np.integer):
        if dtype is FeatureType.INT64 and INT64_MIN <= value <= INT64_MAX:
            return int(value)
        if dtype is FeatureType.FLOAT64:
            return float(value)
    elif isinstance(value, float | np.floating):
        if dtype is FeatureType.FLOAT64:
            return float(value)
    elif isinstance(value, str) and dtype is FeatureType.STRING:
        return value
    raise InvalidFeatureValue(f"{value!r} is not a valid {dtype}")


def _vector(value: object, dim: int) -> Vector:
    try:
        vector = np.array(value, dtype=VECTOR_DTYPE)
    except (TypeError, ValueError) as exc:
        raise InvalidFeatureValue(f"{value!r} is not a float vector") from exc
    if vector.shape != (dim,):
        raise InvalidFeatureValue(f"a vector of length {dim} is declared, got shape {vector.shape}")
    vector.setflags(write=False)
    return vector


def zero(dtype: FeatureType, dim: int = 0) -> FeatureValue:
    """The default of a feature that declares none: 0, 0.0, "", False or a vector of zeros."""
    match dtype:
        case FeatureType.INT64:
            return 0
        case FeatureType.FLOAT64:
            return 0.0
        case FeatureType.STRING:
            return ""
        case FeatureType.BOOL:
            return False
        case FeatureType.FLOAT_VECTOR:
            return _vector(np.zeros(dim), dim)


def encode(dtype: FeatureType, value: FeatureValue) -> bytes:
    """Bytes to store. Numbers are decimal text: redis-cli shows them and HINCRBY works on them."""
    match dtype:
        case FeatureType.FLOAT_VECTOR:
            return np.asarray(value, dtype=VECTOR_DTYPE).tobytes()
        case FeatureType.BOOL:
            return b"1" if value else b"0"
        case FeatureType.FLOAT64:
            return repr(value).encode()  # repr round-trips a float64 exactly
        case _:
            return str(value).encode()


_DECODERS: dict[FeatureType, Callable[[bytes], FeatureValue]] = {
    FeatureType.INT64: int,
    FeatureType.FLOAT64: float,
    FeatureType.STRING: bytes.decode,
    FeatureType.BOOL: lambda raw: raw == b"1",
    # read-only: a view of immutable bytes, no copy
    FeatureType.FLOAT_VECTOR: lambda raw: np.frombuffer(raw, dtype=VECTOR_DTYPE),
}


def decode(dtype: FeatureType, raw: bytes) -> FeatureValue:
    # a dict, not a match: this runs once per value read, and a match tries each case in turn
    return _DECODERS[dtype](raw)
