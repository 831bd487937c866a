"""Hand-made fraud histories for unit tests: member lists, turned into the FraudState a
transaction would read (the windows summed by windows.py's reference, as Redis sums them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.common.fraud_online import CardUse, FraudState, Spend, TransactionLike, epoch_ms
from services.common.fraud_online.windows import card_windows, customer_windows


@dataclass(frozen=True)
class History:
    """What Redis holds for a card and a customer; `state_for(txn)` is what that txn reads."""

    card_30d: tuple[CardUse, ...] = ()
    customer_30d: tuple[Spend, ...] = ()
    rest: dict[str, Any] = field(default_factory=dict)  # the other FraudState fields

    def state_for(self, txn: TransactionLike) -> FraudState:
        t = epoch_ms(txn.timestamp)
        in_order = sorted(self.card_30d, key=lambda u: u.at_ms)  # as ZRANGE returns them
        return FraudState(
            customer=customer_windows(sorted(self.customer_30d, key=lambda s: s.at_ms), t,
                                      txn.transaction_id),
            card=card_windows(in_order, t, txn.transaction_id, txn.device_id,
                              str(txn.ip_address)),
            **self.rest)


def state_of(txn: TransactionLike, state: FraudState | History) -> FraudState:
    return state.state_for(txn) if isinstance(state, History) else state
