"""Event times as the platform stores them: integer milliseconds since the epoch, UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, exact (float seconds x 1000 can be off by one); ValueError
    for a naive time, whose instant is unknown."""
    if moment.utcoffset() is None:
        raise ValueError(f"event time {moment} must be timezone-aware")
    return (moment - _EPOCH) // _MS
