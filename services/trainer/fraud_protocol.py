"""The handbook's evaluation protocol: train 7 days, skip 7 (labels not in yet), test the 7 after.

    |-- warm-up (>= 37 d) --|-- train 7 d --|-- delay 7 d --|-- test 7 d --|
     features only            fit             unlabelled      scored
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from services.common.arrays import BoolArray
from services.trainer.worlds.transactions import TransactionWorldConfig


@dataclass(frozen=True)
class Split:
    """The handbook's train / delay / test days, from the first training day (a midnight)."""

    train_start: pd.Timestamp
    train_days: int = 7
    delay_days: int = 7
    test_days: int = 7

    @classmethod
    def at_end_of(cls, config: TransactionWorldConfig) -> Split:
        """The split whose test week is the world's last week."""
        last_day = pd.Timestamp(config.start_date) + pd.Timedelta(days=config.n_days)
        return cls(last_day - pd.Timedelta(days=cls.train_days + cls.delay_days + cls.test_days))

    @property
    def test_start(self) -> pd.Timestamp:
        return self.train_start + pd.Timedelta(days=self.train_days + self.delay_days)

    def train_mask(self, tx: pd.DataFrame) -> BoolArray:
        end = self.train_start + pd.Timedelta(days=self.train_days)
        return np.asarray((tx["tx_datetime"] >= self.train_start) & (tx["tx_datetime"] < end))

    def test_mask(self, tx: pd.DataFrame) -> BoolArray:
        """Test days, minus the cards whose fraud (from the training week on) is known by then."""
        when = tx["tx_datetime"]
        end = self.test_start + pd.Timedelta(days=self.test_days)
        in_test = (when >= self.test_start) & (when < end)
        frauds = tx[(when >= self.train_start) & (tx["is_fraud"] == 1)]
        first_fraud = tx["card_id"].map(frauds.groupby("card_id")["tx_datetime"].min())
        known = first_fraud < when.dt.normalize() - pd.Timedelta(days=self.delay_days)
        return np.asarray(in_test & ~known)

