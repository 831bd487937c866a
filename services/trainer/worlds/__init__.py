"""Worlds the trainers learn from: synthetic ones with known ground truth, and MovieLens 100k."""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
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


class Frames:
    """What a world's three frames answer the same way whatever made them: rows by id, and the
    events before and after the split. A world (a dataclass) supplies the frames and `split`."""

    users: pd.DataFrame
    titles: pd.DataFrame
    interactions: pd.DataFrame

    @property
    def split(self) -> datetime:
        raise NotImplementedError

    @cached_property
    def user_index(self) -> pd.Index:
        return pd.Index(self.users["user_id"])

    @cached_property
    def title_index(self) -> pd.Index:
        return pd.Index(self.titles["content_id"])

    def user_rows(self, user_ids: Any) -> npt.NDArray[np.int64]:
        return rows_of(self.user_index, user_ids, "user")

    def title_rows(self, content_ids: Any) -> npt.NDArray[np.int64]:
        return rows_of(self.title_index, content_ids, "title")

    @property
    def train(self) -> pd.DataFrame:
        """Watch events before the split: everything a model may learn from."""
        return self.interactions[self.interactions["timestamp"] < self.split]

    @property
    def future(self) -> pd.DataFrame:
        """Watch events at or after the split: the held-out future for evaluation."""
        return self.interactions[self.interactions["timestamp"] >= self.split]


def rows_of(index: pd.Index, ids: Any, kind: str) -> npt.NDArray[np.int64]:
    """Row positions of `ids` in `index`; KeyError naming the first unknown ones."""
    rows = np.asarray(index.get_indexer(pd.Index(np.atleast_1d(np.asarray(ids, dtype=object)))))
    if (rows < 0).any():
        unknown = np.atleast_1d(np.asarray(ids, dtype=object))[rows < 0][:3]
        raise KeyError(f"unknown {kind} id(s): {list(unknown)}")
    return rows.astype(np.int64)
