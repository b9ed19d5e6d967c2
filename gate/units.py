"""Parsing and formatting of the quantities people write in config: ``5%``, ``2ms``, ``300MB``.

Internally every duration is in seconds, every size in bytes, every rate in items per second.
Parsers raise ``ValueError`` with a short reason; gate/config adds the file and key. Every
parser refuses infinities and NaN (``1e999s``, YAML's ``.inf``): no setting means "unbounded".
"""

from __future__ import annotations

import math
import re

_NUMBER = r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
_QUANTITY = re.compile(rf"^\s*{_NUMBER}\s*([A-Za-zµ%/]*)\s*$")

DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "min": 60.0,
}
SIZE_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
}
RATE_UNITS = {"/s": 1.0, "items/s": 1.0, "k/s": 1e3}

# The unit each kind of metric is stored in, and how config values for it are written.
UNIT_SECONDS = "s"
UNIT_BYTES = "B"
UNIT_RATE = "items/s"
UNIT_BYTE_RATE = "B/s"  # a data pipeline's bytes per second
# the units format_value writes with scaled suffixes (ms, MB, k/s, MB/s); others are text
SCALED_UNITS = frozenset({"s", "B", "items/s", "B/s", ""})
# Accuracy-like metrics (accuracy, top5, f1_macro) are fractions in [0, 1]; tolerances on them
# are written in percentage points ("0.5pt" -> 0.005) and changes shown in points.
UNIT_FRACTION = "fraction"


def split_quantity(text: str | int | float) -> tuple[float, str]:
    """``"2ms"`` -> (2.0, "ms"); a bare number -> (number, ""). Raises ValueError for anything
    else, infinities and NaN included."""
    if isinstance(text, bool):
        raise ValueError(f"expected a quantity, got {text!r}")
    if isinstance(text, (int, float)):
        return _finite(text, text), ""
    match = _QUANTITY.match(str(text))
    if not match:
        raise ValueError(f"cannot read {text!r} as a number with a unit")
    return _finite(match.group(1), text), match.group(2)


def _finite(number: str | int | float, text: object) -> float:
    """``number`` as a finite float; ValueError naming ``text`` when it is not one."""
    try:
        value = float(number)
    except OverflowError:  # an integer beyond any float
        value = math.inf
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def parse_percent(text: str | int | float) -> float:
    """``"5%"`` -> 0.05. Raises ValueError for anything else (a bare number is ambiguous)."""
    number, unit = split_quantity(text)
    if unit != "%":
        raise ValueError(f"expected a percentage like '5%', got {text!r}")
    return _finite(number / 100.0, text)


def parse_duration(text: str | int | float) -> float:
    """``"2ms"`` -> 0.002 seconds. A unit is required."""
    number, unit = split_quantity(text)
    if unit not in DURATION_UNITS:
        raise ValueError(f"expected a duration like '2ms' or '0.5s', got {text!r}")
    return _finite(number * DURATION_UNITS[unit], text)


def parse_size(text: str | int | float) -> float:
    """``"300MB"`` -> 3e8 bytes (KB/MB/GB are decimal, KiB/MiB/GiB binary). A unit is required."""
    number, unit = split_quantity(text)
    if unit.lower() not in SIZE_UNITS:
        raise ValueError(f"expected a size like '300MB' or '1GiB', got {text!r}")
    return _finite(number * SIZE_UNITS[unit.lower()], text)


def parse_rate(text: str | int | float) -> float:
    """``"1000/s"`` or ``1000`` -> items per second."""
    number, unit = split_quantity(text)
    if unit == "":
        return number
    if unit not in RATE_UNITS:
        raise ValueError(f"expected a rate like '1000/s', got {text!r}")
    return _finite(number * RATE_UNITS[unit], text)


def parse_points(text: str | int | float) -> float:
    """``"0.5pt"`` -> 0.005 (a change of a fraction, in percentage points). A unit is required."""
    number, unit = split_quantity(text)
    if unit not in ("pt", "pp"):
        raise ValueError(f"expected percentage points like '0.5pt', got {text!r}")
    return _finite(number / 100.0, text)


def parse_for_unit(text: str | int | float, unit: str) -> float:
    """Parse ``text`` as a value of a metric stored in ``unit`` (seconds, bytes, items/s, other)."""
    if unit == UNIT_FRACTION:
        return parse_points(text)
    if unit == UNIT_SECONDS:
        return parse_duration(text)
    if unit == UNIT_BYTES:
        return parse_size(text)
    if unit == UNIT_RATE:
        return parse_rate(text)
    number, suffix = split_quantity(text)
    if suffix not in ("", unit):
        raise ValueError(f"expected a number in {unit or 'the metric unit'}, got {text!r}")
    return number


def _scaled(value: float, scales: tuple[tuple[str, float], ...], floor: str) -> str:
    """Pick the largest scale the value reaches *after* rounding to 3 significant digits."""
    rounded = float(f"{abs(value):.3g}")
    for name, scale in scales:
        if rounded >= scale:
            return f"{value / scale:.3g} {name}"
    return floor


def format_value(value: float, unit: str) -> str:
    """A short human reading of a value stored in ``unit``: ``1.23 ms``, ``45.6 MB``."""
    if unit == UNIT_SECONDS:
        scales = (("s", 1.0), ("ms", 1e-3), ("us", 1e-6))
        return _scaled(value, scales, f"{value / 1e-9:.3g} ns")
    if unit == UNIT_BYTES:
        return _scaled(value, (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)), f"{value:.0f} B")
    if unit == UNIT_RATE:
        return _scaled(value, (("M/s", 1e6), ("k/s", 1e3)), f"{value:.3g} /s")
    if unit == UNIT_BYTE_RATE:
        scales = (("GB/s", 1e9), ("MB/s", 1e6), ("kB/s", 1e3))
        return _scaled(value, scales, f"{value:.0f} B/s")
    if unit == UNIT_FRACTION:
        return f"{value * 100:.2f}%"
    return f"{value:.4g}{' ' + unit if unit else ''}"


BUDGET_STATISTICS = ("median", "mean", "p90", "p99")


def format_points(change: float) -> str:
    """A change of a fraction in percentage points: ``-0.42 pt``."""
    return f"{change * 100:+.2f} pt"


def budget_unit(metric: str) -> str:
    """The unit a budget on ``metric`` is written in (used to parse its limit)."""
    family = metric.split("@", 1)[0].split(".", 1)[0]
    if family in ("latency", "cold_start"):
        return UNIT_SECONDS
    if family in ("memory", "gpu_memory", "model_size"):
        return UNIT_BYTES
    if family in ("throughput", "load", "max_qps"):  # load.achieved@200qps: queries per second
        return UNIT_RATE
    if metric == "data.items_per_s":
        return UNIT_RATE
    if family in FRACTION_METRICS:
        return UNIT_FRACTION
    return ""


FRACTION_METRICS = frozenset({"accuracy", "top5", "f1_macro"})
