"""Pure statistics on small samples: summaries, Student's t, Welch's test, Holm's correction.

No numpy or scipy: the gate compares a handful of per-process values, and the core must run
where neither is installed. Tests check these functions against scipy where it is available.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist


def thin(values: Sequence[float], limit: int) -> list[float]:
    """At most ``limit`` values taken evenly across ``values`` (order kept); all when fewer.

    Used to bound the per-call times that are stored: percentiles barely move.
    """
    if len(values) <= limit:
        return list(values)
    step = len(values) / limit
    return [values[int(i * step)] for i in range(limit)]


def mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def variance(values: Sequence[float]) -> float:
    """Unbiased sample variance (n - 1); 0.0 for a single value."""
    if len(values) < 2:
        return 0.0
    centre = mean(values)
    return math.fsum((v - centre) ** 2 for v in values) / (len(values) - 1)


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default), ``0 <= q <= 1``."""
    if not values:
        raise ValueError("quantile of no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    return quantile(values, 0.5)


def coefficient_of_variation(values: Sequence[float]) -> float:
    """Sample standard deviation over the mean; NaN with fewer than two values."""
    if len(values) < 2:
        return math.nan
    return math.sqrt(variance(values)) / abs(mean(values))


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction for the regularized incomplete beta (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularized incomplete beta function."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_sf_two_sided(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom."""
    if math.isinf(t):
        return 0.0
    return regularized_beta(df / 2.0, 0.5, df / (df + t * t))


def t_ppf(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t (bisection on the CDF; p in (0, 1))."""
    if not 0.0 < p < 1.0:
        raise ValueError("p must be in (0, 1)")
    if p == 0.5:
        return 0.0
    upper_tail = 1.0 - p if p > 0.5 else p
    low, high = 0.0, 1.0
    while t_sf_two_sided(high, df) / 2.0 > upper_tail:
        high *= 2.0
    for _ in range(200):
        middle = (low + high) / 2.0
        if t_sf_two_sided(middle, df) / 2.0 > upper_tail:
            low = middle
        else:
            high = middle
    value = (low + high) / 2.0
    return value if p > 0.5 else -value


@dataclass(frozen=True)
class WelchResult:
    """Welch's test of mean(b) - mean(a): estimate, its interval at 1 - alpha, the p-value."""

    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    df: float
    se: float = 0.0


def welch(a: Sequence[float], b: Sequence[float], alpha: float) -> WelchResult:
    """Welch's unequal-variance t-test and interval for ``mean(b) - mean(a)``.

    Both samples need at least two values. When both have zero variance the difference is exact:
    p is 0 when the means differ and 1 when they do not.
    """
    if len(a) < 2 or len(b) < 2:
        raise ValueError("Welch's test needs at least two values on each side")
    difference = mean(b) - mean(a)
    var_a, var_b = variance(a) / len(a), variance(b) / len(b)
    se2 = var_a + var_b
    if se2 <= 0.0:
        exact = 1.0 if difference == 0.0 else 0.0
        return WelchResult(difference, difference, difference, exact, math.inf)
    se = math.sqrt(se2)
    df = se2**2 / (
        (var_a**2 / (len(a) - 1) if var_a else 0.0) + (var_b**2 / (len(b) - 1) if var_b else 0.0)
    )
    p_value = t_sf_two_sided(difference / se, df)
    half_width = t_ppf(1.0 - alpha / 2.0, df) * se
    return WelchResult(
        difference, difference - half_width, difference + half_width, p_value, df, se
    )


def holm(p_values: Sequence[float], alpha: float) -> list[bool]:
    """Holm's step-down procedure: which hypotheses are rejected with family-wise error <= alpha."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rejected = [False] * len(p_values)
    total = len(p_values)
    for rank, index in enumerate(order):
        if p_values[index] <= alpha / (total - rank):
            rejected[index] = True
        else:
            break
    return rejected


@dataclass(frozen=True)
class PairedResult:
    """Paired analysis of per-round differences d (e.g. log(head/base) per round).

    ``estimate`` is mean(d); ``lower``/``upper`` are one-sided (1 - alpha) bounds from Student's
    t (together a 1 - 2 alpha interval); ``p_worse``/``p_better`` the one-sided p-values for
    mean > 0 and mean < 0; ``wilcoxon_p`` the two-sided exact signed-rank p-value, a check that
    does not assume normality; ``mde`` the smallest true mean this many rounds would detect with
    80% power at this alpha (same scale as d).
    """

    estimate: float
    lower: float
    upper: float
    p_worse: float
    p_better: float
    wilcoxon_p: float
    mde: float
    n: int


def t_sf(t: float, df: float) -> float:
    """P(T >= t) for Student's t (one-sided upper tail)."""
    two_sided = t_sf_two_sided(t, df)
    return two_sided / 2.0 if t >= 0 else 1.0 - two_sided / 2.0


def wilcoxon_signed_rank_p(differences: Sequence[float]) -> float:
    """Two-sided exact p-value of Wilcoxon's signed-rank test (zeros dropped, ties mid-ranked).

    Exact by dynamic programming over rank sums (ranks doubled so mid-ranks stay integers);
    fine for the few dozen rounds perf-gate uses. 1.0 when nothing is left to rank.
    """
    values = [d for d in differences if d != 0.0]
    n = len(values)
    if n == 0:
        return 1.0
    order = sorted(range(n), key=lambda i: abs(values[i]))
    doubled_ranks = [0] * n
    position = 0
    while position < n:
        end = position
        while end + 1 < n and abs(values[order[end + 1]]) == abs(values[order[position]]):
            end += 1
        midrank_doubled = position + end + 2  # (position+1 + end+1) = twice the mean rank
        for k in range(position, end + 1):
            doubled_ranks[order[k]] = midrank_doubled
        position = end + 1
    total = sum(doubled_ranks)
    positive = sum(r for r, v in zip(doubled_ranks, values, strict=True) if v > 0)
    # counts[s] = number of sign assignments whose positive doubled-rank sum is s
    counts = [0] * (total + 1)
    counts[0] = 1
    for rank in doubled_ranks:
        for s in range(total, rank - 1, -1):
            counts[s] += counts[s - rank]
    assignments = 1 << n
    extreme = min(positive, total - positive)
    tail = sum(counts[: extreme + 1])
    return min(1.0, 2.0 * tail / assignments)


def minimum_detectable_effect(se: float, df: float, alpha: float, power: float = 0.8) -> float:
    """The smallest true effect a one-sided level-alpha t-test detects with ``power``."""
    if se == 0.0 or math.isinf(df):
        return 0.0
    return (t_ppf(1.0 - alpha, df) + t_ppf(power, df)) * se


def paired(differences: Sequence[float], alpha: float) -> PairedResult:
    """Paired analysis of per-round differences; needs at least two values."""
    n = len(differences)
    if n < 2:
        raise ValueError("a paired analysis needs at least two rounds")
    estimate = mean(differences)
    se = math.sqrt(variance(differences) / n)
    df = n - 1
    if se == 0.0:
        sign = (estimate > 0) - (estimate < 0)
        return PairedResult(
            estimate,
            estimate,
            estimate,
            0.0 if sign > 0 else 1.0,
            0.0 if sign < 0 else 1.0,
            wilcoxon_signed_rank_p(differences),
            0.0,
            n,
        )
    t_crit = t_ppf(1.0 - alpha, df)
    statistic = estimate / se
    return PairedResult(
        estimate=estimate,
        lower=estimate - t_crit * se,
        upper=estimate + t_crit * se,
        p_worse=t_sf(statistic, df),
        p_better=t_sf(-statistic, df),
        wilcoxon_p=wilcoxon_signed_rank_p(differences),
        mde=minimum_detectable_effect(se, df, alpha),
        n=n,
    )


def min_calls_for_percentile(q: float, confidence: float) -> int:
    """Calls needed before the sample maximum bounds the q-quantile at ``confidence``.

    The distribution-free order-statistic bound: with n calls, P(all below the q-quantile) = q^n,
    so the largest call exceeds it with probability 1 - q^n. For q = 0.99 at 99.9% confidence
    this gives 688; MLPerf LoadGen's early-stopping tables use the same binomial reasoning (662
    for 99% confidence on a 99th percentile at its tolerance).
    """
    return math.ceil(math.log(1.0 - confidence) / math.log(q))


def gross_outliers(
    values: Sequence[float], *, z: float = 5.0, floor: float = 0.10, share: float = 0.2
) -> list[int]:
    """Indices of gross outliers among log-scale values (a whole round that ran 2x slow).

    A value is an outlier when it lies more than ``z`` robust standard deviations (1.4826 x the
    median absolute deviation) *and* more than ``floor`` (10%, on the log scale) from the median.
    At most ``share`` of the values (rounded down) are flagged, the farthest first; fewer than five
    values are never judged. On this hardware single processes sometimes ran 2x slower than their
    siblings (bench/noise.py); one such round would otherwise swamp a t-test.
    """
    n = len(values)
    limit = int(n * share)
    if n < 5 or limit == 0:
        return []
    centre = median(values)
    deviations = [abs(v - centre) for v in values]
    spread = 1.4826 * median(deviations)
    candidates = [i for i in range(n) if deviations[i] > floor and deviations[i] > z * spread]
    candidates.sort(key=lambda i: deviations[i], reverse=True)
    return sorted(candidates[:limit])


def best_block(times: Sequence[float], blocks: int = 10, min_calls: int = 5) -> float:
    """A round's value from its per-call times in the order they ran: the median of each of
    ``blocks`` consecutive blocks, and the smallest of those (the median of all when there are
    fewer than two blocks of ``min_calls`` calls).

    On a shared machine a core runs slow for phases of 0.1-1 s (a neighbour, the hypervisor),
    so a round's overall median depends on how much of its time fell in such phases (log SD of
    22% between processes here); the fastest block is the speed the code has when nothing
    interferes, which slow phases can only hide, never fake (log SD 4% on the same machine,
    bench/noise.py). The noise of timing is additive: it only ever adds time (Chen and Revels,
    "Robust benchmarking in noisy environments", 2016). A real change scales every block, so
    the ratio of two rounds' best blocks estimates it as the ratio of medians would."""
    count = min(blocks, len(times) // min_calls)
    if count < 2:
        return median(times)
    size = len(times) // count
    return min(median(times[i * size : (i + 1) * size]) for i in range(count))


def slow_processes(
    values: Sequence[float], *, z: float = 4.0, floor: float = 0.15
) -> list[tuple[int, float]]:
    """Rounds whose whole process ran slow, judged against the same side's other rounds:
    (index, how many times slower than the side's median) for each log-scale value more than
    ``z`` robust standard deviations (1.4826 x MAD) *and* more than ``floor`` (15% on the log
    scale) above the median. Only the slow direction counts: a process can be slowed down by
    a neighbour, not sped up. Fewer than three values are never judged."""
    if len(values) < 3:
        return []
    centre = median(values)
    spread = 1.4826 * median([abs(v - centre) for v in values])
    limit = max(floor, z * spread)
    return [(i, math.exp(v - centre)) for i, v in enumerate(values) if v - centre > limit]


# --------------------------------------------------------------------------------------------
# Quality metrics: proportions (accuracy) and per-example errors, over one eval set.


def normal_ppf(p: float) -> float:
    """The ``p`` quantile of the standard normal distribution."""
    return NormalDist().inv_cdf(p)


def wilson_interval(successes: int, n: int, alpha: float) -> tuple[float, float]:
    """Wilson's score interval (1 - alpha) for a proportion; (0, 1) when n is 0."""
    if n == 0:
        return 0.0, 1.0
    z = normal_ppf(1.0 - alpha / 2.0)
    p = successes / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def binomial_cdf_half(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2), via the regularized incomplete beta function."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return regularized_beta(n - k, k + 1, 0.5)


def mcnemar_exact_p(to_wrong: int, to_right: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs (a binomial test at 1/2).

    ``to_wrong``: examples right in the baseline and wrong now; ``to_right``: the reverse.
    """
    discordant = to_wrong + to_right
    if discordant == 0:
        return 1.0
    return min(1.0, 2.0 * binomial_cdf_half(min(to_wrong, to_right), discordant))


def paired_proportion_interval(
    to_wrong: int, to_right: int, n: int, alpha: float
) -> tuple[float, float]:
    """Interval for the change of a paired proportion (current - baseline), Bonett-Price
    adjusted Wald: add one to each discordant count, two to n."""
    z = normal_ppf(1.0 - alpha / 2.0)
    p_lost = (to_wrong + 1) / (n + 2)
    p_gained = (to_right + 1) / (n + 2)
    difference = p_gained - p_lost
    se = math.sqrt(max(0.0, p_lost + p_gained - difference * difference) / (n + 2))
    return max(-1.0, difference - z * se), min(1.0, difference + z * se)


def newcombe_interval(
    base_successes: int, base_n: int, current_successes: int, current_n: int, alpha: float
) -> tuple[float, float]:
    """Newcombe's hybrid score interval for p_current - p_base (independent samples)."""
    p1, p2 = base_successes / base_n, current_successes / current_n
    l1, u1 = wilson_interval(base_successes, base_n, alpha)
    l2, u2 = wilson_interval(current_successes, current_n, alpha)
    difference = p2 - p1
    low = difference - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2)
    high = difference + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2)
    return low, high


def two_proportion_p(
    base_successes: int, base_n: int, current_successes: int, current_n: int
) -> float:
    """Two-sided p-value of the pooled two-proportion z-test."""
    pooled = (base_successes + current_successes) / (base_n + current_n)
    se = math.sqrt(pooled * (1 - pooled) * (1 / base_n + 1 / current_n))
    if se == 0.0:
        return 1.0
    z = (current_successes / current_n - base_successes / base_n) / se
    return 2.0 * (1.0 - NormalDist().cdf(abs(z)))


@dataclass(frozen=True)
class MeanDifference:
    """mean(current - baseline) over paired examples: estimate, (1 - alpha) interval, p."""

    estimate: float
    ci_low: float
    ci_high: float
    p_value: float


def paired_mean_difference(differences: Sequence[float], alpha: float) -> MeanDifference:
    """Student's t on per-example differences (e.g. of absolute errors); needs two values."""
    n = len(differences)
    if n < 2:
        raise ValueError("a paired analysis needs at least two examples")
    estimate = mean(differences)
    se = math.sqrt(variance(differences) / n)
    if se == 0.0:
        return MeanDifference(estimate, estimate, estimate, 1.0 if estimate == 0 else 0.0)
    t_crit = t_ppf(1.0 - alpha / 2.0, n - 1)
    p_value = t_sf_two_sided(estimate / se, n - 1)
    return MeanDifference(estimate, estimate - t_crit * se, estimate + t_crit * se, p_value)
