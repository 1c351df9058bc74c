"""Rates per million with 95% intervals.

Why Wilson and an exact bound at zero: the events we count are rare (a few
false zeros in millions of tallies), where the normal approximation gives
negative lower bounds. Wilson's score interval behaves there; for zero events
the exact (Clopper-Pearson) upper bound ``1 - 0.025**(1/n)`` is reported, which
for large n is the "rule of three" (3.69/n two-sided) users know.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Rate:
    events: int
    denominator: int
    per_million: float
    ci95: tuple[float, float]  # per million

    def as_json(self) -> dict:
        d = asdict(self)
        d["ci95"] = list(self.ci95)
        return d


def rate(events: int, n: int) -> Rate:
    """Rate of ``events`` per million of ``n`` trials, with its 95% interval."""
    if n <= 0:
        return Rate(events, n, 0.0, (0.0, 0.0))
    k = min(events, n)
    p = k / n
    if k == 0:
        lo, hi = 0.0, 1.0 - 0.025 ** (1.0 / n)
    elif k == n:
        lo, hi = 0.025 ** (1.0 / n), 1.0
    else:
        z2 = Z95 * Z95
        den = 1 + z2 / n
        centre = (p + z2 / (2 * n)) / den
        half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / den
        lo, hi = max(0.0, centre - half), min(1.0, centre + half)
    return Rate(events, n, p * 1e6, (lo * 1e6, hi * 1e6))
