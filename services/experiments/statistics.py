"""The results' statistics, pure: Wilson intervals, the two-proportion z-test, the SRM chi-square.

    wilson_interval(30, 200)                  -> (0.1071, 0.2061)   rate 0.15
    two_proportion_test(200, 1000, 250, 1000) -> lift +0.05 (+25 %), z = 2.68, p = 0.0074
    srm_test([5150, 4850], [0.5, 0.5])        -> chi2 = 9.0, p = 0.0027 (not flagged at 0.001)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

CONFIDENCE = 0.95
SRM_ALPHA = 0.001  # a sample-ratio mismatch this unlikely under the configured split is a bug


def z_for(confidence: float = CONFIDENCE) -> float:
    """The two-sided normal quantile: 1.95996 for 95 %."""
    return float(stats.norm.ppf(0.5 + confidence / 2))


def wilson_interval(successes: int, trials: int,
                    confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Wilson score interval of a proportion: inside [0, 1] and sensible at 0 or n successes and
    for small n, where the normal (Wald) interval is not. None without trials."""
    if trials <= 0:
        return None
    if not 0 <= successes <= trials:
        raise ValueError(f"successes ({successes}) must be within 0..trials ({trials})")
    z = z_for(confidence)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Lift:
    absolute: float                          # p_treatment - p_control
    absolute_interval: tuple[float, float]   # Wald interval of the difference (unpooled)
    relative: float | None                   # absolute / p_control; None when p_control is 0
    z: float
    p_value: float                           # two-sided, pooled two-proportion z-test


def two_proportion_test(control_successes: int, control_trials: int,
                        treatment_successes: int, treatment_trials: int,
                        confidence: float = CONFIDENCE) -> Lift | None:
    """Treatment against control. None when either arm has no trials, or when both rates are 0
    or both 1 (no variance: nothing to test)."""
    if control_trials <= 0 or treatment_trials <= 0:
        return None
    p_c = control_successes / control_trials
    p_t = treatment_successes / treatment_trials
    pooled = (control_successes + treatment_successes) / (control_trials + treatment_trials)
    pooled_se = math.sqrt(pooled * (1 - pooled) * (1 / control_trials + 1 / treatment_trials))
    if pooled_se == 0:
        return None
    z = (p_t - p_c) / pooled_se
    p_value = float(2 * stats.norm.sf(abs(z)))
    se = math.sqrt(p_c * (1 - p_c) / control_trials + p_t * (1 - p_t) / treatment_trials)
    half = z_for(confidence) * se
    difference = p_t - p_c
    return Lift(absolute=difference, absolute_interval=(difference - half, difference + half),
                relative=difference / p_c if p_c > 0 else None, z=z, p_value=p_value)


@dataclass(frozen=True)
class SampleRatio:
    observed: tuple[int, ...]
    expected: tuple[float, ...]   # total x each weight
    chi_square: float
    p_value: float
    flagged: bool                 # p < alpha: the split is not what the weights say


def srm_test(observed: Sequence[int], weights: Sequence[float],
             alpha: float = SRM_ALPHA) -> SampleRatio | None:
    """Pearson's chi-square goodness of fit of the units per variation to the configured weights
    (k - 1 degrees of freedom). None with no units or fewer than two weighted variations."""
    if len(observed) != len(weights):
        raise ValueError("one weight per observed count is needed")
    total = sum(observed)
    total_weight = math.fsum(weights)
    pairs = [(o, total * w / total_weight) for o, w in zip(observed, weights, strict=True)]
    if total <= 0 or sum(1 for _, e in pairs if e > 0) < 2:
        return None
    if any(o > 0 and e == 0 for o, e in pairs):  # units where the weights allow none
        chi_square, p_value = math.inf, 0.0
    else:
        chi_square = math.fsum((o - e) ** 2 / e for o, e in pairs if e > 0)
        degrees = sum(1 for _, e in pairs if e > 0) - 1
        p_value = float(stats.chi2.sf(chi_square, degrees))
    return SampleRatio(tuple(observed), tuple(e for _, e in pairs), chi_square, p_value,
                       p_value < alpha)


POWER = 0.8


def sample_size_per_arm(p_control: float, p_treatment: float, alpha: float = 1 - CONFIDENCE,
                        power: float = POWER) -> int:
    """Units per arm for the two-sided two-proportion z-test above to detect p_control against
    p_treatment with probability `power` (Fleiss's formula without continuity correction: the
    pooled variance under no difference, each arm's own under the difference):

        n = (z_{1-alpha/2} sqrt(2 p̄(1-p̄)) + z_{power} sqrt(p_c(1-p_c) + p_t(1-p_t)))² / (p_t-p_c)²
    """
    if not (0 < p_control < 1 and 0 < p_treatment < 1) or p_control == p_treatment:
        raise ValueError("two different rates strictly between 0 and 1 are needed, got "
                         f"{p_control} and {p_treatment}")
    z_alpha = float(stats.norm.ppf(1 - alpha / 2))
    z_power = float(stats.norm.ppf(power))
    mean = (p_control + p_treatment) / 2
    n = (z_alpha * math.sqrt(2 * mean * (1 - mean))
         + z_power * math.sqrt(p_control * (1 - p_control) + p_treatment * (1 - p_treatment))
         ) ** 2 / (p_treatment - p_control) ** 2
    return math.ceil(n)


def minimum_detectable_lift(p_control: float, units_per_arm: int,
                            alpha: float = 1 - CONFIDENCE, power: float = POWER) -> float:
    """The smallest rise over p_control that `units_per_arm` detect with `power` (bisection on
    sample_size_per_arm, to 1e-6)."""
    low, high = 1e-6, 1 - p_control - 1e-9
    if units_per_arm < sample_size_per_arm(p_control, p_control + high, alpha, power):
        raise ValueError(f"{units_per_arm} units per arm detect no rise over {p_control}")
    while high - low > 1e-6:
        middle = (low + high) / 2
        if sample_size_per_arm(p_control, p_control + middle, alpha, power) > units_per_arm:
            low = middle
        else:
            high = middle
    return high
