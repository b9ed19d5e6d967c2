"""Tail percentiles of a load run that can be trusted, and when there are too few queries.

A served model's p99 from 100 queries is the second-largest latency: one slow query more or
less moves it anywhere. MLPerf LoadGen refuses such percentiles with a binomial
"early stopping" rule. perf-gate uses the distribution-free form of the same reasoning: the
reported bound of the q-quantile is the smallest order statistic ``x_(k)`` for which

    P(x_(k) < true q-quantile) = P(Binomial(n, q) >= k) = I_q(k, n - k + 1) <= 1 - confidence,

so the true q-quantile lies at or below it with at least ``confidence``. With no query allowed
above it (k = n) this needs q^n <= 1 - confidence: at 99% confidence, 459 queries for p99 and
44 for p90 (``stats.min_calls_for_percentile``); with more queries the bound moves down from the
maximum towards the empirical percentile. Fewer than that: the percentile is refused, and the
result says how many queries it needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gate.core.stats import min_calls_for_percentile, quantile, regularized_beta

CONFIDENCE = 0.99


@dataclass(frozen=True)
class Percentile:
    """One percentile of a run: the empirical value, the bound the rule allows (None:
    refused) and the queries the rule needs."""

    q: float
    value: float  # the empirical q-quantile of the measured latencies
    bound: float | None  # the order statistic that bounds the true q-quantile; None: too few
    needed: int  # queries needed before any bound exists (no query above it)

    @property
    def valid(self) -> bool:
        return self.bound is not None

    @property
    def name(self) -> str:
        return f"p{self.q * 100:g}"


def bound_index(n: int, q: float, confidence: float = CONFIDENCE) -> int | None:
    """The 1-based rank k of the smallest order statistic that bounds the q-quantile at
    ``confidence`` among ``n`` values; None when even the maximum does not."""
    if not 0.0 < q < 1.0 or n < 1:
        raise ValueError(f"expected 0 < q < 1 and n >= 1, got q={q}, n={n}")
    if q**n > 1.0 - confidence:
        return None
    low, high = 1, n  # I_q(k, n-k+1) falls as k grows: binary search the first k that passes
    while low < high:
        k = (low + high) // 2
        if regularized_beta(k, n - k + 1, q) <= 1.0 - confidence:
            high = k
        else:
            low = k + 1
    return low


def percentile(latencies: Sequence[float], q: float, confidence: float = CONFIDENCE) -> Percentile:
    """The q-percentile of ``latencies`` with its bound (``bound_index``), or refused."""
    if not latencies:
        raise ValueError("no latencies")
    ordered = sorted(latencies)
    k = bound_index(len(ordered), q, confidence)
    return Percentile(
        q=q,
        value=quantile(ordered, q),
        bound=ordered[k - 1] if k is not None else None,
        needed=min_calls_for_percentile(q, confidence),
    )
