"""Coordinates for the console's inline SVG charts (pure: numbers in, numbers out)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class LineChart:
    """A p99-over-time line against a budget line, in a width x height view box."""

    width: int
    height: int
    points: str          # the polyline's "x,y x,y ..."
    budget_y: float
    y_max_ms: float
    x_max_s: float


def line_chart(samples: Sequence[tuple[float, float | None]], budget_ms: float,
               x_max_s: float, width: int = 600, height: int = 220) -> LineChart:
    """samples: (seconds since start, p99 ms or None for a second with no answer). The y axis
    runs to twice the budget or the highest p99, so the budget line is always inside."""
    kept = [(t, p) for t, p in samples if p is not None]
    y_max = max([budget_ms * 2, *(p * 1.1 for _, p in kept)])
    x_max = max(x_max_s, *(t for t, _ in samples), 1.0) if samples else max(x_max_s, 1.0)

    def y(ms: float) -> float:
        return round(height - ms / y_max * height, 1)

    points = " ".join(f"{round(t / x_max * width, 1)},{y(p)}" for t, p in kept)
    return LineChart(width, height, points, y(budget_ms), round(y_max, 1), x_max)


def gauge_end(risk: float, radius: float = 80.0, cx: float = 100.0,
              cy: float = 100.0) -> tuple[float, float]:
    """Where a half-circle risk gauge's arc ends: risk 0 at the left, 1 at the right."""
    angle = math.pi * (1 - min(1.0, max(0.0, risk)))
    return round(cx + radius * math.cos(angle), 1), round(cy - radius * math.sin(angle), 1)


def bar_widths(contributions: Sequence[float], width: float = 240.0) -> list[float]:
    """Each reason's bar, as long as its contribution against the largest one."""
    largest = max((abs(c) for c in contributions), default=0.0)
    if largest <= 0:
        return [0.0 for _ in contributions]
    return [round(abs(c) / largest * width, 1) for c in contributions]
