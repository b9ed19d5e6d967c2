"""gate.units: parsing the quantities people write in config, formatting values for reports."""

from __future__ import annotations

import pytest

from gate import units

# --------------------------------------------------------------------------------------------
# parse_percent


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5%", 0.05),
        ("0%", 0.0),
        ("12.5%", 0.125),
        (".5%", 0.005),
        (" 5 % ", 0.05),
        ("150%", 1.5),
        ("1e1%", 0.1),
    ],
)
def test_parse_percent_accepts_percentages(text: str, expected: float) -> None:
    assert units.parse_percent(text) == pytest.approx(expected, rel=1e-12, abs=0)


@pytest.mark.parametrize(
    "text",
    [
        5,  # a bare number is ambiguous (5 or 500%?)
        0.05,
        "5",
        "0.05",
        "5ms",
        "5 percent",
        "-5%",
        "%",
        "",
        "five%",
        "5%%",
        True,
        None,
    ],
)
def test_parse_percent_rejects_everything_else(text: object) -> None:
    with pytest.raises(ValueError, match=r"."):
        units.parse_percent(text)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2ms", 0.002),
        ("2 ms", 0.002),
        ("0.5s", 0.5),
        ("1sec", 1.0),
        ("3us", 3e-6),
        ("3µs", 3e-6),
        ("250ns", 250e-9),
        ("2min", 120.0),
        ("1.5e-3s", 0.0015),
        ("0s", 0.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert units.parse_duration(text) == pytest.approx(seconds, rel=1e-12, abs=0)


@pytest.mark.parametrize(
    "text",
    [
        "2",  # a unit is required
        2,
        0.5,
        "2 hours",
        "2MS",  # units are case-sensitive (MS is not milliseconds)
        "2m",
        "2MB",
        "-2ms",
        "ms",
        "2 ms ms",
        "two ms",
        "",
        True,
        None,
        [1],
    ],
)
def test_parse_duration_rejects(text: object) -> None:
    with pytest.raises(ValueError, match=r"."):
        units.parse_duration(text)  # type: ignore[arg-type]


def test_parse_duration_error_message_shows_input_and_example() -> None:
    with pytest.raises(ValueError, match=r"expected a duration like '2ms'.*'2'"):
        units.parse_duration("2")


# --------------------------------------------------------------------------------------------
# parse_size


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("300MB", 300e6),
        ("300mb", 300e6),
        ("1kB", 1000),
        ("1KB", 1000),
        ("1KiB", 1024),
        ("1MiB", 2**20),
        ("1GiB", 2**30),
        ("2GB", 2e9),
        ("512B", 512),
        ("512 b", 512),
        ("0.5GiB", 2**29),
    ],
)
def test_parse_size(text: str, size: float) -> None:
    assert units.parse_size(text) == pytest.approx(size, rel=1e-12, abs=0)


@pytest.mark.parametrize(
    "text", ["300", 300, 1.5, "300 TB", "300 bytes", "2ms", "-1MB", "MB", "", True, None]
)
def test_parse_size_rejects(text: object) -> None:
    with pytest.raises(ValueError, match=r"."):
        units.parse_size(text)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# parse_rate


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("1000/s", 1000.0),
        ("1000 /s", 1000.0),
        ("2 items/s", 2.0),
        ("3k/s", 3000.0),
        (1000, 1000.0),  # a bare number is unambiguous for a rate
        (12.5, 12.5),
        ("1000", 1000.0),
    ],
)
def test_parse_rate(text: object, rate: float) -> None:
    assert units.parse_rate(text) == pytest.approx(rate, rel=1e-12, abs=0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text", ["1000/min", "1000 per second", "3K/s", "1000ms", "-5/s", "/s", "", True, None]
)
def test_parse_rate_rejects(text: object) -> None:
    with pytest.raises(ValueError, match=r"."):
        units.parse_rate(text)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# split_quantity / parse_for_unit


def test_split_quantity() -> None:
    assert units.split_quantity("12.5 ms") == (12.5, "ms")
    assert units.split_quantity(3) == (3.0, "")
    assert units.split_quantity(2.5) == (2.5, "")
    with pytest.raises(ValueError, match="expected a quantity"):
        units.split_quantity(False)
    with pytest.raises(ValueError, match="cannot read"):
        units.split_quantity("1 2 ms")


@pytest.mark.parametrize(
    ("text", "unit", "expected"),
    [
        ("2ms", units.UNIT_SECONDS, 0.002),
        ("1GiB", units.UNIT_BYTES, 2**30),
        ("500/s", units.UNIT_RATE, 500.0),
        (500, units.UNIT_RATE, 500.0),
        ("0.97", "", 0.97),
        (0.97, "", 0.97),
        ("5", "%", 5.0),
        ("5%", "%", 5.0),
        ("12 tokens", "tokens", 12.0),
    ],
)
def test_parse_for_unit(text: object, unit: str, expected: float) -> None:
    assert units.parse_for_unit(text, unit) == pytest.approx(expected, rel=1e-12)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "unit"),
    [
        ("0.002", units.UNIT_SECONDS),  # seconds need a unit
        (0.002, units.UNIT_SECONDS),
        ("600", units.UNIT_BYTES),  # bytes need a unit
        ("2ms", units.UNIT_BYTES),
        ("2MB", units.UNIT_SECONDS),
        ("5ms", ""),  # a unit-less metric takes no unit
        ("5ms", "tokens"),
        ("abc", ""),
        ("-1", ""),
    ],
)
def test_parse_for_unit_rejects(text: object, unit: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        units.parse_for_unit(text, unit)  # type: ignore[arg-type]


def test_parse_for_unit_message_names_the_unit() -> None:
    with pytest.raises(ValueError, match="expected a number in tokens"):
        units.parse_for_unit("5ms", "tokens")
    with pytest.raises(ValueError, match="expected a number in the metric unit"):
        units.parse_for_unit("5ms", "")


# --------------------------------------------------------------------------------------------
# format_value


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (1.5, "s", "1.5 s"),
        (1.0, "s", "1 s"),
        (120.0, "s", "120 s"),
        (0.0123, "s", "12.3 ms"),
        (0.001, "s", "1 ms"),
        (2e-6, "s", "2 us"),
        (3.456e-5, "s", "34.6 us"),
        (5e-10, "s", "0.5 ns"),
        (0.0, "s", "0 ns"),
        (-0.0123, "s", "-12.3 ms"),
        (3e8, "B", "300 MB"),
        (2.5e9, "B", "2.5 GB"),
        (1500, "B", "1.5 kB"),
        (999, "B", "999 B"),
        (0, "B", "0 B"),
        (1234, "items/s", "1.23 k/s"),
        (2e6, "items/s", "2 M/s"),
        (5, "items/s", "5 /s"),
        (0.98765, "", "0.9877"),
        (12.5, "%", "12.5 %"),
        (42, "tokens", "42 tokens"),
    ],
)
def test_format_value(value: float, unit: str, text: str) -> None:
    assert units.format_value(value, unit) == text


@pytest.mark.parametrize(
    ("value", "unit"),
    [(0.9996, "s"), (999.6e-6, "s"), (999_600.0, "B"), (999.6, "items/s"), (999_600.0, "items/s")],
)
def test_format_value_never_uses_scientific_notation_at_scale_boundaries(
    value: float, unit: str
) -> None:
    text = units.format_value(value, unit)
    assert "e+" not in text, text


# --------------------------------------------------------------------------------------------
# budget_unit


@pytest.mark.parametrize(
    ("metric", "unit"),
    [
        ("latency", units.UNIT_SECONDS),
        ("latency.p99", units.UNIT_SECONDS),
        ("latency@32.p90", units.UNIT_SECONDS),
        ("cold_start", units.UNIT_SECONDS),
        ("memory.peak", units.UNIT_BYTES),
        ("memory", units.UNIT_BYTES),
        ("model_size", units.UNIT_BYTES),
        ("throughput", units.UNIT_RATE),
        ("throughput@32", units.UNIT_RATE),
        ("accuracy", units.UNIT_FRACTION),
        ("f1_macro", units.UNIT_FRACTION),
        ("mae", ""),
        ("latency_custom", ""),
    ],
)
def test_budget_unit(metric: str, unit: str) -> None:
    assert units.budget_unit(metric) == unit


def test_budget_unit_round_trips_through_parse_for_unit() -> None:
    assert units.parse_for_unit("2ms", units.budget_unit("latency.p99")) == pytest.approx(0.002)
    assert units.parse_for_unit("600MB", units.budget_unit("memory.peak")) == 600e6
    assert units.parse_for_unit("1000/s", units.budget_unit("throughput@8")) == 1000.0
    with pytest.raises(ValueError, match=r"."):
        units.parse_for_unit("0.002", units.budget_unit("latency.p99"))
