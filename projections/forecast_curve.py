"""The arithmetic of the campaign forecast: the voting curve's trend and who votes by size. Pure, no I/O.

Two estimates feed projections.forecast (method and limits: docs/campaign.md):
- ``project_voters``: how many holders will have instructed by the polls' close, from the count of
  first instructions per bin so far: a straight line through the recent half of the bins' counts
  (a daily rate that rises toward the meeting, the usual proxy-campaign shape), with its standard
  error, and the run-rate (the recent rate held constant) as the no-acceleration bound.
- ``fit_turnout``: the probability that a position of a given size instructs at all, logistic in
  log(shares) (institutions nearly always vote, small retail accounts seldom), fitted by maximum
  likelihood on "instructed by now" with probability F x p(shares), F the fraction of the eventual
  voters in by now.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z90 = 1.6448536269514722  # two-sided 90 %: the 5th and 95th percentiles of a normal


@dataclass(frozen=True)
class VoterProjection:
    """Holders instructed by now and, projected to the polls' close: point, low and high."""

    now: int
    point: float
    low: float
    high: float


def _positive_integral(a: float, b: float, x0: float, x1: float) -> float:
    """The integral of max(0, a + b x) over [x0, x1]: a rate that falls to zero stays there."""
    if b == 0:
        return max(0.0, a) * (x1 - x0)
    root = -a / b
    lo, hi = (max(x0, root), x1) if b > 0 else (x0, min(x1, root))
    if hi <= lo:
        return 0.0
    return a * (hi - lo) + b * (hi * hi - lo * lo) / 2


def project_voters(counts: Sequence[int], remaining_bins: float) -> VoterProjection:
    """Project the count of instructing holders ``remaining_bins`` bins ahead from first instructions per bin.

    ``counts``: first instructions per bin, oldest first, the last bin ending now. Fitted on the recent
    half (at least 3 bins): the first days' burst after the mailing would bend the line otherwise.
    """
    now = sum(counts)
    recent = list(counts[-max(3, len(counts) // 2) :])
    m = len(recent)
    if m < 3 or remaining_bins <= 0:
        return VoterProjection(now, float(now), float(now), float(now))
    xs = range(m)
    x_mean, y_mean = (m - 1) / 2, sum(recent) / m
    sxx = sum((x - x_mean) ** 2 for x in xs)
    b = sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, recent, strict=True)) / sxx
    a = y_mean - b * x_mean
    x0, x1 = m - 0.5, m - 0.5 + remaining_bins  # bin x is centred on x: the future starts half a bin on
    trend = _positive_integral(a, b, x0, x1)
    # Standard error of the projected sum a*L + b*M under the line's residual variance (OLS).
    residual = sum((y - a - b * x) ** 2 for x, y in zip(xs, recent, strict=True)) / max(1, m - 2)
    length, moment = x1 - x0, (x1 * x1 - x0 * x0) / 2
    var_a, var_b, cov = residual * (1 / m + x_mean**2 / sxx), residual / sxx, -residual * x_mean / sxx
    se = math.sqrt(max(0.0, length**2 * var_a + moment**2 * var_b + 2 * length * moment * cov))
    run_rate = y_mean * remaining_bins
    point = now + trend
    return VoterProjection(
        now=now,
        point=point,
        low=now + max(0.0, min(run_rate, trend - Z90 * se)),
        high=point + Z90 * se,
    )


def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z)) if z > -700 else 0.0


def fit_turnout(groups: Sequence[tuple[float, int, int]], elapsed: float) -> tuple[float, float]:
    """(a, b) of p(shares) = sigmoid(a + b log shares), given (log shares, positions, instructed by now) groups.

    Maximum likelihood of "instructed by now" with probability ``elapsed`` x p (``elapsed`` = F, the
    fraction of the eventual voters in by now), by Fisher scoring; a few dozen steps on ~100 groups.
    """
    f = min(max(elapsed, 1e-6), 1.0)
    a, b = 0.0, 0.0
    for _ in range(100):
        ga = gb = haa = hab = hbb = 0.0
        for x, total, voted in groups:
            s = _sigmoid(a + b * x)
            p = min(max(f * s, 1e-12), 1 - 1e-12)
            slope = f * s * (1 - s)  # dp/dz
            score = (voted / p - (total - voted) / (1 - p)) * slope
            info = total * slope * slope / (p * (1 - p))
            ga, gb = ga + score, gb + score * x
            haa, hab, hbb = haa + info, hab + info * x, hbb + info * x * x
        det = haa * hbb - hab * hab
        if det <= 1e-18:
            break
        da, db = (hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det
        step = max(1.0, abs(da) / 5, abs(db) / 5)  # damped: no overshoot into a flat sigmoid
        a, b = a + da / step, b + db / step
        if abs(da) + abs(db) < 1e-10:
            break
    return a, b


def later_probability(a: float, b: float, elapsed: float, shares: int) -> float:
    """The chance a position not instructed by now instructs before the polls close: p(1 - F) / (1 - F p)."""
    p = _sigmoid(a + b * math.log(shares))
    f = min(max(elapsed, 0.0), 1.0)
    return 0.0 if f * p >= 1 else p * (1 - f) / (1 - f * p)
