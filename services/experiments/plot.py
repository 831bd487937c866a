"""The conversion-over-time plot: each variation's cumulative rate with its 95 % band, as PNG.

Drawn on a bare matplotlib Figure with the Agg canvas (no pyplot): no global state, so requests
on different threads cannot draw into each other's figure.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from services.experiments.results import RatePoint


def conversion_plot(experiment: str, series: dict[str, list[RatePoint]],
                    control: str) -> bytes:
    figure = Figure(figsize=(8, 4.5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for name, points in series.items():
        if not points:
            continue
        times = np.array([p.time_ms for p in points], dtype="datetime64[ms]")
        line = axes.plot(times, [p.rate for p in points], linewidth=2 if name == control else 1.5,
                         label=f"{name} ({points[-1].exposed} units, "
                               f"{points[-1].rate:.2%})")[0]
        axes.fill_between(times, [p.low for p in points], [p.high for p in points],
                          color=line.get_color(), alpha=0.2, linewidth=0)
    if any(series.values()):
        axes.legend(loc="best")
        figure.autofmt_xdate()
    else:
        axes.text(0.5, 0.5, "no exposures yet", ha="center", va="center",
                  transform=axes.transAxes)
    axes.set_title(f"{experiment}: cumulative conversion rate, 95 % Wilson interval")
    axes.set_xlabel("time (UTC)")
    axes.set_ylabel("converted / exposed units")
    axes.yaxis.set_major_formatter(lambda value, _: f"{value:.0%}")
    axes.grid(alpha=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
