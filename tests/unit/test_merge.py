"""``perf-gate merge``: shards of one commit merge into one record and one report grouped by
environment; shards of different commits or configs, overlapping or missing ones are refused
by name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gate.core.types import Direction, GitInfo, Metric, RunRecord, Sample
from gate.errors import ConfigError
from gate.integrations.cli import main as cli
from gate.report.markdown import render_comment
from gate.store import merge
from gate.store.records import read_record, write_record

LATENCY = Metric("latency", "s", Direction.LOWER)
CPU = {"key": "cpu000000001", "cpu_model": "AMD EPYC 7763", "gpu": None, "os": "Linux 6"}
GPU = {"key": "gpu000000002", "cpu_model": "Intel Xeon", "gpu": "NVIDIA A10G", "os": "Linux 6"}
COMMIT = "a" * 40


def record(
    benchmarks: list[str],
    *,
    commit: str = COMMIT,
    digest: str = "cfg1",
    environment: dict[str, Any] | None = None,
    shard: tuple[int, int] | None = None,
) -> RunRecord:
    return RunRecord(
        samples=tuple(Sample(benchmark=b, metric=LATENCY, values=(1.0, 1.1)) for b in benchmarks),
        environment=environment or CPU,
        git=GitInfo(commit=commit, ref="feature", dirty=False),
        created="2026-11-20T10:00:00+00:00",
        config_digest=digest,
        settings={
            "rounds": 2,
            **({"shard": {"index": shard[0], "count": shard[1]}} if shard else {}),
        },
        info={b: {"params": 10.0} for b in benchmarks},
    )


def report(benchmarks: list[str], verdict: str = "unchanged", alpha: float = 0.005) -> dict:
    return {
        "format": 1,
        "exit_code": 1 if verdict == "regression" else 0,
        "passed": verdict != "regression",
        "has_baseline": True,
        "alpha": alpha,
        "baseline_commit": "b" * 40,
        "current_commit": COMMIT,
        "environment_key": "cpu000000001",
        "environment_differences": {},
        "warnings": [],
        "notes": ["a note"],
        "errors": [],
        "comparisons": [
            {
                "benchmark": b,
                "metric": "latency",
                "unit": "s",
                "verdict": verdict,
                "relative_change": 0.3 if verdict == "regression" else 0.001,
                "baseline": 0.001,
                "current": 0.0013,
            }
            for b in benchmarks
        ],
    }


def write(tmp_path: Path, name: str, rec: RunRecord, comparison: dict | None = None) -> Path:
    path = tmp_path / f"results-{name}.json"
    write_record(path, rec)
    if comparison is not None:
        (tmp_path / f"comparison-{name}.json").write_text(json.dumps(comparison), encoding="utf-8")
    return path


def test_shards_of_one_commit_merge_into_one_record_and_report(tmp_path: Path) -> None:
    one = write(tmp_path, "1", record(["a[torch]"], shard=(1, 2)), report(["a[torch]"]))
    two = write(
        tmp_path, "2", record(["b[torch]"], shard=(2, 2)), report(["b[torch]"], "regression")
    )
    merged = merge.merge([one, two])
    assert {s.benchmark for s in merged.record.samples} == {"a[torch]", "b[torch]"}
    assert merged.record.environment == CPU
    assert "shard" not in merged.record.settings
    assert merged.record.settings["merged"]["files"] == [str(one), str(two)]
    assert merged.labels == {}  # one environment: names stay as they are
    data = merged.comparison
    assert data is not None
    assert data["exit_code"] == 1
    assert data["counts"]["regression"] == 1
    assert data["alpha"] == pytest.approx(0.01)  # two shards at alpha / 2 each
    assert data["current_commit"] == COMMIT
    assert data["environment_key"] == "cpu000000001"
    assert data["notes"][0] == "a note"  # the same note of both shards once
    assert "Merged from 2 jobs" in data["notes"][-1]
    written = merge.write(merged, tmp_path / "out" / "results.json")
    assert written == [tmp_path / "out" / "results.json", tmp_path / "out" / "comparison.json"]
    assert len(read_record(written[0]).samples) == 2


def test_shards_of_different_commits_are_refused_naming_them(tmp_path: Path) -> None:
    one = write(tmp_path, "1", record(["a[torch]"], shard=(1, 2)))
    two = write(tmp_path, "2", record(["b[torch]"], commit="c" * 40, shard=(2, 2)))
    with pytest.raises(ConfigError, match="different commits") as caught:
        merge.merge([one, two])
    assert str(one) in caught.value.message
    assert str(two) in caught.value.message
    assert "aaaaaaaaaaaa" in caught.value.message
    assert "cccccccccccc" in caught.value.message
    assert caught.value.slug == "merge"


def test_shards_of_different_configs_are_refused(tmp_path: Path) -> None:
    one = write(tmp_path, "1", record(["a[torch]"], shard=(1, 2)))
    two = write(tmp_path, "2", record(["b[torch]"], digest="cfg2", shard=(2, 2)))
    with pytest.raises(ConfigError, match=r"different configs .*cfg1.*cfg2"):
        merge.merge([one, two])


def test_a_missing_shard_is_refused(tmp_path: Path) -> None:
    one = write(tmp_path, "1", record(["a[torch]"], shard=(1, 3)))
    three = write(tmp_path, "3", record(["c[torch]"], shard=(3, 3)))
    with pytest.raises(ConfigError, match=r"shard\(s\) 2/3 missing"):
        merge.merge([one, three])


def test_a_shard_given_twice_or_overlapping_results_are_refused(tmp_path: Path) -> None:
    one = write(tmp_path, "1", record(["a[torch]"], shard=(1, 2)))
    again = write(tmp_path, "1b", record(["b[torch]"], shard=(1, 2)))
    with pytest.raises(ConfigError, match="shard 1/2 is in both"):
        merge.merge([one, again])
    plain = write(tmp_path, "x", record(["a[torch]"]))
    other = write(tmp_path, "y", record(["a[torch]"]))
    with pytest.raises(ConfigError, match=r"a\[torch\] latency was measured in both"):
        merge.merge([plain, other])


def test_shards_split_differently_are_refused(tmp_path: Path) -> None:
    one = write(tmp_path, "1", record(["a[torch]"], shard=(1, 2)))
    two = write(tmp_path, "2", record(["b[torch]"], shard=(2, 3)))
    with pytest.raises(ConfigError, match="split differently"):
        merge.merge([one, two])


def test_a_report_missing_beside_one_shard_is_named(tmp_path: Path) -> None:
    one = write(tmp_path, "1", record(["a[torch]"], shard=(1, 2)), report(["a[torch]"]))
    two = write(tmp_path, "2", record(["b[torch]"], shard=(2, 2)))
    with pytest.raises(ConfigError, match=f"no comparison report beside {two}"):
        merge.merge([one, two])


def test_environments_merge_into_one_report_grouped_by_environment(tmp_path: Path) -> None:
    cpu = write(
        tmp_path,
        "cpu",
        record(["m[torch]", "m[onnxruntime]"]),
        report(["m[torch]", "m[onnxruntime]"], "inconclusive", alpha=0.01),
    )
    gpu = write(
        tmp_path,
        "gpu",
        record(["m[torch]"], environment=GPU),
        report(["m[torch]"], "regression", alpha=0.01),
    )
    merged = merge.merge([gpu, cpu])
    assert merged.labels == {"gpu000000002": "NVIDIA A10G", "cpu000000001": "AMD EPYC 7763"}
    names = {s.benchmark for s in merged.record.samples}
    assert names == {
        "m[torch] · AMD EPYC 7763",
        "m[onnxruntime] · AMD EPYC 7763",
        "m[torch] · NVIDIA A10G",
    }
    assert set(merged.record.environment["environments"]) == {"AMD EPYC 7763", "NVIDIA A10G"}
    data = merged.comparison
    assert data is not None
    assert data["alpha"] == pytest.approx(0.01)  # each environment is its own family
    assert data["environment_key"] is None
    assert {c["environment"] for c in data["comparisons"]} == {"AMD EPYC 7763", "NVIDIA A10G"}
    assert "AMD EPYC 7763: a note" in data["notes"]
    text = render_comment(data)
    rows = [line for line in text.splitlines() if "| m\\[" in line]
    # the GPU's regression in the table; the CPU's inconclusive results folded below it,
    # grouped by environment (labels in order)
    assert [row.split("|")[2].strip() for row in rows] == [
        r"m\[torch\] · NVIDIA A10G",
        r"m\[torch\] · AMD EPYC 7763",
        r"m\[onnxruntime\] · AMD EPYC 7763",
    ]
    # the heading names both machines (the GPU by name; a CPU record without its architecture
    # by its label) and the worst change
    assert text.startswith(
        "### ❌ perf-gate (NVIDIA A10G + AMD EPYC 7763): m\\[torch\\] · NVIDIA A10G latency "
    )


def test_same_hardware_label_gets_the_key(tmp_path: Path) -> None:
    other = {**CPU, "key": "cpu999999999", "os": "Windows"}
    parts = [
        merge.Part(tmp_path / "a", record(["a"])),
        merge.Part(tmp_path / "b", record(["b"], environment=other)),
    ]
    assert merge.label_environments(parts) == {
        "cpu000000001": "AMD EPYC 7763 (cpu00000)",
        "cpu999999999": "AMD EPYC 7763 (cpu99999)",
    }


def test_the_cli_merges_and_says_what_it_wrote(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = write(tmp_path, "1", record(["a[torch]"], shard=(1, 2)), report(["a[torch]"]))
    two = write(tmp_path, "2", record(["b[torch]"], shard=(2, 2)), report(["b[torch]"]))
    out = tmp_path / "merged" / "results.json"
    assert cli.main(["merge", str(one), str(two), "-o", str(out)]) == 0
    assert "merged 2 results of commit aaaaaaaaaaaa" in capsys.readouterr().out
    assert (out.parent / "comparison.json").is_file()
    bad = write(tmp_path, "3", record(["c[torch]"], commit="d" * 40))
    assert cli.main(["merge", str(one), str(bad)]) == 2
    assert "perf-gate: error: perf-gate merge: the shards come from different commits" in (
        capsys.readouterr().err
    )
