"""No train/serve skew: a world replayed through the stream handlers gives the offline features.

The events the seeder publishes for a world (services/seeder/history.py: transactions in time
order, each fraud label at its label_time) go through the production path on real Redis,
straight from their wire format: batches recorded and read by RedisFraudState as the scorers do,
labels by FraudLabelHandler. Each batch is read once as it is recorded, and once more after the
stream processor (TransactionFeaturesHandler) recorded it again, as on a redelivery; both must
equal services.trainer.fraud_features.fraud_feature_matrix on every row and feature.
"""

from __future__ import annotations

import numpy as np
import pytest
import redis

from services.designs.model_features import FRAUD_FEATURE_NAMES
from services.trainer.fraud_features import fraud_feature_matrix
from services.trainer.worlds.transactions import generate_transactions
from tests.support.fraud_parity import WORLD, replay

pytestmark = pytest.mark.integration









def test_online_features_equal_the_offline_matrix_on_every_row(redis_client: redis.Redis) -> None:
    transactions = generate_transactions(WORLD).transactions
    assert transactions["tx_datetime"].is_monotonic_increasing
    offline = fraud_feature_matrix(transactions)

    vectors = list(replay(redis_client, transactions))
    before = np.stack([b for b, _ in vectors])
    after = np.stack([a for _, a in vectors])

    for online in (before, after):
        wrong = ~np.isclose(online, offline, rtol=1e-5, atol=1e-4)
        by_feature = {FRAUD_FEATURE_NAMES[j]: int(n)
                      for j, n in enumerate(wrong.sum(axis=0)) if n}
        assert not by_feature, f"online != offline on {len(transactions)} rows: {by_feature}"
    # the replay must exercise what it claims to: risk from labels, travel, shared devices
    for name in ("terminal_risk_30d", "merchant_risk_30d", "speed_kmh_from_last_tx",
                 "device_nb_cards_30d", "card_nb_small_tx_1h"):
        assert (offline[:, FRAUD_FEATURE_NAMES.index(name)] > 0).sum() > 10, name
