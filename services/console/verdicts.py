"""An experiment's verdict in one sentence, from the experiments API's results (pure)."""

from __future__ import annotations

from typing import Any

ALPHA = 0.05  # the significance level docs/experiments.md reads the two-sided p-value against


def verdict(results: dict[str, Any]) -> str:
    """What a reader may conclude. A flagged sample ratio overrides everything: the split is
    broken, so no difference between the variations can be trusted."""
    srm = results.get("sample_ratio_mismatch")
    if srm and srm.get("flagged"):
        return "sample ratio mismatch: do not trust these results"
    variations = results.get("variations", [])
    if not any(v.get("exposed") for v in variations):
        return "no exposures yet"
    lifts = [v for v in variations if v.get("lift") is not None]
    if not lifts:
        return "no comparison yet: a variation has no conversions to compare"
    best = min(lifts, key=lambda v: v["lift"]["p_value"])
    lift = best["lift"]
    if lift["p_value"] >= ALPHA:
        return f"no significant difference yet (smallest p = {lift['p_value']:.3f})"
    winner = best["name"] if lift["absolute"] > 0 else results.get("control", "control")
    return (f"{winner} wins: {best['name']} {lift['absolute']:+.3f} against control, "
            f"p = {lift['p_value']:.3f}")


def interval_scale(results: dict[str, Any]) -> float:
    """The x-axis end of the conversion chart: the highest upper bound, with headroom."""
    highs = [v["interval"]["high"] for v in results.get("variations", []) if v.get("interval")]
    return max(0.01, max(highs, default=0.0) * 1.1)
