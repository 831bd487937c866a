"""Worlds the trainers learn from: synthetic ones with known ground truth, and MovieLens 100k."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd


class WatchWorld(Protocol):
    """What the recommendation trainer reads from a world, synthetic or real.

    users:        user_id (opaque string), max_maturity (highest maturity level allowed)
    titles:       content_id (opaque string), title, genres ("Crime|Drama", names from `genres`),
                  release_date (UTC), release_year, maturity_level
    interactions: user_id, content_id, timestamp (UTC, sorted), completed
    The split: events at or after `split` are the held-out future, the `holdout_days` before it
    the validation window the ranker and EASE's lambda are fit on.
    """

    @property
    def users(self) -> pd.DataFrame: ...
    @property
    def titles(self) -> pd.DataFrame: ...
    @property
    def interactions(self) -> pd.DataFrame: ...
    @property
    def genres(self) -> tuple[str, ...]: ...
    @property
    def seed(self) -> int: ...
    @property
    def split(self) -> datetime: ...
    @property
    def holdout_days(self) -> int: ...

    def user_rows(self, user_ids: Any) -> npt.NDArray[np.int64]: ...
    def title_rows(self, content_ids: Any) -> npt.NDArray[np.int64]: ...


def rows_of(index: pd.Index, ids: Any, kind: str) -> npt.NDArray[np.int64]:
    """Row positions of `ids` in `index`; KeyError naming the first unknown ones."""
    rows = np.asarray(index.get_indexer(pd.Index(np.atleast_1d(np.asarray(ids, dtype=object)))))
    if (rows < 0).any():
        unknown = np.atleast_1d(np.asarray(ids, dtype=object))[rows < 0][:3]
        raise KeyError(f"unknown {kind} id(s): {list(unknown)}")
    return rows.astype(np.int64)
