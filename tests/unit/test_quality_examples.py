"""gate.store.outcomes: per-example outcomes <-> compact JSON, and their trip through the
run record file (gate.store.records)."""

from __future__ import annotations

import array
import base64
import json
import math
import random
from pathlib import Path
from typing import Any

import pytest

from gate.core.types import Direction, Metric, Replication, RunRecord, Sample
from gate.errors import BaselineError
from gate.store.outcomes import decode, encode
from gate.store.records import read_record, record_to_dict, write_record

ACCURACY = Metric("accuracy", "fraction", Direction.HIGHER)
MAE = Metric("mae", "", Direction.LOWER)


def f32(values: list[float]) -> tuple[float, ...]:
    """``values`` rounded to float32, as the encoding stores them."""
    return tuple(array.array("f", values))


# --------------------------------------------------------------------------------------------
# round trips


def test_bits_round_trip() -> None:
    values = (1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0)
    data = encode(values)
    assert set(data) == {"n", "bits"}
    assert data["n"] == 9
    # LSB first: bits 0, 2, 3, 7 of the first byte, bit 0 of the second.
    assert base64.b64decode(data["bits"]) == bytes([0b10001101, 0b00000001])
    assert decode(data) == values


@pytest.mark.parametrize("n", [1, 7, 8, 9, 15, 16, 17, 1000])
def test_bits_round_trip_at_byte_boundaries(n: int) -> None:
    rng = random.Random(n)
    values = tuple(float(rng.random() < 0.5) for _ in range(n))
    data = encode(values)
    assert len(base64.b64decode(data["bits"])) == (n + 7) // 8
    assert decode(data) == values


def test_all_ones_and_all_zeros() -> None:
    assert decode(encode((1.0,) * 20)) == (1.0,) * 20
    assert decode(encode((0.0,) * 20)) == (0.0,) * 20
    assert base64.b64decode(encode((0.0,) * 20)["bits"]) == bytes(3)


def test_booleans_and_integers_are_bits() -> None:
    data = encode((True, False, 1, 0))  # type: ignore[arg-type]
    assert "bits" in data
    assert decode(data) == (1.0, 0.0, 1.0, 0.0)


def test_floats_round_trip_as_float32() -> None:
    values = (0.5, 0.25, 3.0, 1e-3, 123.456, 0.0, 1.0)
    data = encode(values)
    assert set(data) == {"n", "f32"}
    assert data["n"] == 7
    assert len(base64.b64decode(data["f32"])) == 4 * 7
    assert decode(data) == f32(list(values))
    assert decode(data)[:3] == (0.5, 0.25, 3.0)  # exact in float32
    assert decode(data)[4] == pytest.approx(123.456, rel=1e-7)


def test_floats_are_little_endian() -> None:
    data = encode((1.5, 2.0))
    assert base64.b64decode(data["f32"]) == bytes.fromhex("0000c03f") + bytes.fromhex("00000040")


def test_non_finite_floats_survive() -> None:
    decoded = decode(encode((0.5, math.inf, math.nan)))
    assert decoded[0] == 0.5
    assert decoded[1] == math.inf
    assert math.isnan(decoded[2])


def test_empty_round_trip() -> None:
    data = encode(())
    assert data == {"n": 0, "bits": ""}
    assert decode(data) == ()


def test_one_hundred_thousand_bits() -> None:
    rng = random.Random(1)
    values = tuple(float(rng.random() < 0.9) for _ in range(100_000))
    data = encode(values)
    assert len(base64.b64decode(data["bits"])) == 12_500
    assert len(json.dumps(data)) < 17_000
    assert decode(json.loads(json.dumps(data))) == values


def test_one_hundred_thousand_floats() -> None:
    rng = random.Random(2)
    values = [abs(rng.gauss(0.0, 2.0)) for _ in range(100_000)]
    data = encode(tuple(values))
    assert len(base64.b64decode(data["f32"])) == 400_000
    assert len(json.dumps(data)) < 540_000
    assert decode(json.loads(json.dumps(data))) == f32(values)


# --------------------------------------------------------------------------------------------
# malformed input


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (None, "expected {n: a count >= 0"),
        ([1, 0], "expected {n: a count >= 0"),
        ({"bits": "AQ=="}, "expected {n: a count >= 0"),
        ({"n": "3", "bits": "AQ=="}, "expected {n: a count >= 0"),
        ({"n": 3.0, "bits": "AQ=="}, "expected {n: a count >= 0"),
        ({"n": 3}, "expected a 'bits' or 'f32' field"),
        ({"n": 3, "bools": "AQ=="}, "expected a 'bits' or 'f32' field"),
        ({"n": 9, "bits": "AQ=="}, "1 bytes cannot hold 9 outcomes"),
        ({"n": 3, "bits": "AQID"}, "3 bytes cannot hold 3 outcomes"),
        ({"n": 3, "f32": base64.b64encode(bytes(8)).decode()}, "2 values where 3 were recorded"),
        ({"n": 1, "f32": "AAA="}, "multiple of item size"),
    ],
)
def test_malformed_data_is_a_value_error(data: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("|", r"\|")):
        decode(data)


@pytest.mark.parametrize("field", ["bits", "f32"])
@pytest.mark.parametrize("text", ["not base64!", "AQ=", "AQ==\n!"])
def test_invalid_base64_is_a_value_error(field: str, text: str) -> None:
    with pytest.raises(ValueError, match=r"(?i)padding|base64|non-base64|invalid"):
        decode({"n": 1, field: text})


@pytest.mark.parametrize("payload", [5, None, [1, 2]])
def test_non_string_payload_is_a_value_error(payload: Any) -> None:
    with pytest.raises(ValueError, match=r"."):
        decode({"n": 3, "bits": payload})


def test_negative_count_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"."):
        decode({"n": -3, "bits": ""})


# --------------------------------------------------------------------------------------------
# through the run record file


def quality_record() -> RunRecord:
    rng = random.Random(5)
    bits = tuple(float(rng.random() < 0.8) for _ in range(1000))
    errors = [abs(rng.gauss(0.0, 1.0)) for _ in range(300)]
    return RunRecord(
        samples=(
            Sample(
                benchmark="m[torch]",
                metric=ACCURACY,
                values=(sum(bits) / len(bits),),
                replication=Replication.EVALUATION,
                examples=bits,
            ),
            Sample(
                benchmark="r[torch]",
                metric=MAE,
                values=(sum(errors) / len(errors),),
                replication=Replication.EVALUATION,
                examples=f32(errors),
            ),
            Sample(
                benchmark="m[torch]",
                metric=Metric("latency", "s", Direction.LOWER),
                values=(0.01, 0.011),
            ),
        ),
        environment={"key": "k"},
        info={"m[torch]": {"eval": {"hash": "abc", "examples": 1000, "source": "d.npz"}}},
    )


def test_examples_round_trip_through_the_record_file(tmp_path: Path) -> None:
    record = quality_record()
    path = tmp_path / "results.json"
    write_record(path, record)
    back = read_record(path)
    assert back.samples == record.samples
    accuracy = back.sample("m[torch]", "accuracy")
    assert accuracy is not None
    assert accuracy.replication is Replication.EVALUATION
    assert accuracy.examples == record.samples[0].examples
    assert back.sample("r[torch]", "mae").examples == record.samples[1].examples  # type: ignore[union-attr]
    assert back.info["m[torch]"]["eval"]["hash"] == "abc"


def test_samples_without_examples_have_no_examples_key() -> None:
    data = record_to_dict(quality_record())
    keys = [set(s) for s in data["samples"]]
    assert "examples" in keys[0]
    assert "examples" in keys[1]
    assert "examples" not in keys[2]
    assert data["samples"][0]["examples"]["n"] == 1000
    assert "bits" in data["samples"][0]["examples"]
    assert "f32" in data["samples"][1]["examples"]


def _damaged(tmp_path: Path, examples: Any) -> Path:
    data = record_to_dict(quality_record())
    data["samples"][1]["examples"] = examples
    path = tmp_path / "damaged.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "examples",
    [
        {"n": 300, "f32": "@@@"},
        {"n": 301, "f32": base64.b64encode(bytes(1200)).decode()},
        {"n": 300},
        "AAAA",
        {"n": 9, "bits": "AQ=="},
    ],
)
def test_damaged_examples_name_the_key(tmp_path: Path, examples: Any) -> None:
    path = _damaged(tmp_path, examples)
    with pytest.raises(BaselineError) as info:
        read_record(path)
    message = info.value.message
    assert str(path) in message
    assert "samples[1].examples" in message
    assert "unreadable per-example outcomes" in message
    assert info.value.slug == "baseline-corrupt"


def test_damaged_examples_with_a_non_string_payload_name_the_key(tmp_path: Path) -> None:
    path = _damaged(tmp_path, {"n": 300, "f32": None})
    with pytest.raises(BaselineError, match=r"samples\[1\]\.examples"):
        read_record(path)


def test_null_examples_read_as_none(tmp_path: Path) -> None:
    path = _damaged(tmp_path, None)
    assert read_record(path).samples[1].examples == ()
