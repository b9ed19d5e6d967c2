"""``perf-gate run --shard I/N``: parsing, the deterministic split by model, alpha per shard."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.config import GateConfig, load_config
from gate.core.types import Direction, Metric, RunRecord, Sample
from gate.errors import ConfigError
from gate.store import shard
from gate.store.records import read_record, write_record

MODEL = "    torch: m:build\n    input: m:inputs\n    variants: [{variants}]\n"


def config(tmp_path: Path, models: dict[str, str]) -> GateConfig:
    text = "models:\n" + "".join(
        f"  {name}:\n" + MODEL.format(variants=variants) for name, variants in models.items()
    )
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "perf-gate.yaml"
    path.write_text(text + "policy: {alpha: 0.02}\n", encoding="utf-8")
    return load_config(path)


@pytest.mark.parametrize(
    ("text", "expected"), [("1/1", (1, 1)), ("2/3", (2, 3)), (" 3 / 3 ", (3, 3))]
)
def test_parse_reads_i_of_n(text: str, expected: tuple[int, int]) -> None:
    parsed = shard.Shard.parse(text)
    assert (parsed.index, parsed.count) == expected
    assert str(parsed) == f"{expected[0]}/{expected[1]}"


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/0", "-1/2", ""])
def test_parse_refuses_anything_else_naming_the_option(text: str) -> None:
    with pytest.raises(ConfigError, match="--shard") as caught:
        shard.Shard.parse(text)
    assert caught.value.slug == "shard"


def test_a_shard_is_never_saved_as_a_baseline() -> None:
    with pytest.raises(ConfigError, match="perf-gate merge"):
        shard.Shard.parse("1/2", save=True)


def test_models_are_dealt_largest_first_and_variants_stay_together(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        {
            "big": "torch, torch-int8, onnxruntime",
            "mid": "torch, onnxruntime",
            "small-a": "torch",
            "small-b": "torch",
        },
    )
    # big (3 variants) -> 1, mid (2) -> 2, small-a -> 2 (3 vs 2), small-b -> 1 (tie: first)
    assert shard.assign(cfg, 2) == [["big", "small-b"], ["mid", "small-a"]]
    first = shard.select(cfg, shard.Shard(1, 2))
    second = shard.select(cfg, shard.Shard(2, 2))
    assert first == {"big[torch]", "big[torch-int8]", "big[onnxruntime]", "small-b[torch]"}
    assert second == {"mid[torch]", "mid[onnxruntime]", "small-a[torch]"}
    assert first | second == {n for m in cfg.models for n in m.benchmark_names()}


def test_the_split_does_not_depend_on_the_order_in_the_config(tmp_path: Path) -> None:
    one = config(tmp_path / "a", {"x": "torch", "y": "torch", "z": "torch"})
    other = config(tmp_path / "b", {"z": "torch", "x": "torch", "y": "torch"})
    for count in (1, 2, 3):
        assert shard.assign(one, count) == shard.assign(other, count)


def test_select_keeps_within_the_selected_names(tmp_path: Path) -> None:
    cfg = config(tmp_path, {"a": "torch, onnxruntime", "b": "torch"})
    assert shard.select(cfg, shard.Shard(1, 2), {"a[torch]", "b[torch]"}) == {"a[torch]"}


def test_more_shards_than_models_is_an_error_naming_the_count(tmp_path: Path) -> None:
    cfg = config(tmp_path, {"only": "torch, onnxruntime"})
    with pytest.raises(ConfigError, match="has 1 model") as caught:
        shard.select(cfg, shard.Shard(2, 2))
    assert "use --shard I/N with N <= 1" in caught.value.message


def test_each_shard_tests_at_alpha_over_n(tmp_path: Path) -> None:
    cfg = config(tmp_path, {"a": "torch", "b": "torch"})
    assert shard.shard_config(cfg, shard.Shard(1, 2)).policy.alpha == pytest.approx(0.01)
    assert shard.shard_config(cfg, shard.Shard(1, 2)).digest == cfg.digest


def test_mark_records_the_shard_in_the_run_record(tmp_path: Path) -> None:
    record = RunRecord(
        samples=(
            Sample(benchmark="a", metric=Metric("latency", "s", Direction.LOWER), values=(1,)),
        ),
        environment={"key": "k"},
        settings={"rounds": 3},
    )
    path = tmp_path / "results.json"
    write_record(path, record)
    comparison = tmp_path / "comparison.json"
    comparison.write_text("{}", encoding="utf-8")
    shard.mark(path, record, shard.Shard(2, 3), comparison)
    assert read_record(path).settings == {"rounds": 3, "shard": {"index": 2, "count": 3}}
