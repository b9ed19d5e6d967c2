"""``models.<name>.load`` and ``models.<name>.data`` through real ``perf-gate run``s: a torch
and an onnxruntime variant served under Poisson load in every round, a model made slower
failing its tail percentiles against the base revision, a Parquet loader with more worker
processes delivering more items per second, and a loader that raises or runs dry as one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from ._support import (
    comparisons_by_key,
    read_json,
    run_cli,
    run_pytest,
    samples_by_key,
    write_files,
)
from .test_ab import commit_all, repo_with

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

MODEL = """
import time

import torch
from torch import nn


class Served(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(16, 4)

    def forward(self, x):
        time.sleep({wait})  # a call that waits (a remote feature store, say) then computes
        return self.linear(x)


def build():
    torch.manual_seed(0)
    return Served().eval()


def small():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)).eval()
"""
PIPELINE = """
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

FILE = Path(__file__).with_name("rows.parquet")


def write():
    table = pa.table({"x": np.arange(4096, dtype=np.float32), "y": np.arange(4096) % 10})
    pq.write_table(table, FILE, row_group_size=64)


class RowGroups(torch.utils.data.Dataset):
    def __len__(self):
        return pq.ParquetFile(FILE).num_row_groups

    def __getitem__(self, index):
        time.sleep(0.01)  # object storage answers a read in 10 ms
        group = pq.ParquetFile(FILE).read_row_group(index).to_pydict()
        return torch.tensor(group["x"]), torch.tensor(group["y"])


def serial():
    return torch.utils.data.DataLoader(RowGroups(), batch_size=None, num_workers=0)


def parallel():
    return torch.utils.data.DataLoader(RowGroups(), batch_size=None, num_workers=4)


def broken():
    for index in range(3):
        if index == 2:
            raise OSError("rows.parquet: truncated footer")
        yield np.zeros((8, 2))
"""
FAST = "policy: {min_rounds: 3, max_rounds: 6, round_step: 3, diagnose: never}\n"


@pytest.mark.slow
def test_variants_are_served_under_load_and_a_slower_model_fails_p99(tmp_path: Path) -> None:
    config = (
        "models:\n"
        "  served:\n"
        "    torch: model:build\n"
        "    input: {shape: [1, 16]}\n"
        "    variants: [torch]\n"
        "    metrics: [latency]\n"
        "    load: {rate: 300, queries: 480, threads: 2, percentiles: [p50, p99]}\n"
        "measure: {rounds: 2, warmup: 2, min_calls: 10, min_time: 0.01s}\n" + FAST
    )
    repo = repo_with(
        tmp_path / "repo", {"perf-gate.yaml": config, "model.py": MODEL.replace("{wait}", "0.001")}
    )
    write_files(repo, {"model.py": MODEL.replace("{wait}", "0.004")})
    commit_all(repo, "a slower model")
    ran = run_cli(repo, "run", "--ab", "HEAD~1")
    assert ran.ret == 1, ran.output
    rows = comparisons_by_key(read_json(repo / ".perf-gate" / "comparison.json"))
    p99 = rows[("served[torch]", "latency.p99@300qps")]
    assert p99["verdict"] == "regression", p99
    assert p99["mode"] == "ab"  # a load run needs the machine to itself: never parallel
    assert p99["relative_change"] > 1.0  # 1 ms -> 4 ms of service, and the queue behind it
    achieved = rows[("served[torch]", "load.achieved@300qps")]
    assert achieved["verdict"] != "regression", achieved  # both keep up with 300/s
    assert "latency.p99@300qps" in ran.output
    assert "load: 480 of 480 queries served per round" in ran.output


@pytest.mark.slow
def test_an_onnxruntime_variant_serves_every_query_with_dynamic_batching(tmp_path: Path) -> None:
    config = (
        "models:\n"
        "  small:\n"
        "    torch: model:small\n"
        "    input: {shape: [1, 16]}\n"
        "    variants: [onnxruntime]\n"
        "    metrics: [latency]\n"
        "    load: {rate: 800, queries: 600, threads: 1, max_batch: 8, max_wait: 1ms}\n"
        "measure: {rounds: 2, warmup: 2, min_calls: 10, min_time: 0.01s}\n"
        "policy: {diagnose: never}\n"
    )
    repo = write_files(tmp_path, {"perf-gate.yaml": config, "model.py": MODEL})
    ran = run_cli(repo, "run")
    assert ran.ret == 0, ran.output
    samples = samples_by_key(read_json(repo / ".perf-gate" / "results.json"))
    for q in ("p50", "p90", "p99"):
        values = samples[("small[onnxruntime]", f"latency.{q}@800qps")]["values"]
        assert len(values) == 2
        assert all(0 < v < 1 for v in values)
    achieved = samples[("small[onnxruntime]", "load.achieved@800qps")]["values"]
    assert all(400 < v < 1200 for v in achieved)
    info = read_json(repo / ".perf-gate" / "results.json")["info"]["small[onnxruntime]"]
    (note,) = [n for n in info["notes"] if n.startswith("load:")]
    assert "600 of 600 queries served" in note


@pytest.mark.slow
def test_a_parquet_loader_with_more_workers_delivers_more_items(tmp_path: Path) -> None:
    config = (
        "models:\n"
        "  serial: {data: {loader: pipeline:serial, batches: 40}}\n"
        "  parallel: {data: {loader: pipeline:parallel, batches: 40}}\n"
        "measure: {rounds: 2}\n"
    )
    repo = write_files(tmp_path, {"perf-gate.yaml": config, "pipeline.py": PIPELINE})
    pytest.importorskip("pyarrow")
    import importlib.util

    spec = importlib.util.spec_from_file_location("pipeline", repo / "pipeline.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.write()
    ran = run_cli(repo, "run")
    assert ran.ret == 0, ran.output
    results = read_json(repo / ".perf-gate" / "results.json")
    samples = samples_by_key(results)
    serial = samples[("serial[data]", "data.items_per_s")]["values"]
    parallel = samples[("parallel[data]", "data.items_per_s")]["values"]
    assert max(serial) * 1.5 < min(parallel)  # 4 workers wait on 4 reads at once
    assert ("parallel[data]", "data.bytes_per_s") not in samples  # reported in the note
    first = samples[("parallel[data]", "cold_start.first_batch")]["values"]
    assert all(v > 0.004 for v in first)  # the first read at least
    (note,) = results["info"]["parallel[data]"]["notes"]
    assert "each of its 4 loader worker process(es)" in note
    assert "2560 items (30.7 kB) in 40 batches timed per round" in note  # x float32, y int64
    assert "data.items_per_s" in ran.output


@pytest.mark.slow
@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            "{loader: pipeline:broken, batches: 5}",
            "round 1: OSError: rows.parquet: truncated footer (pipeline.py:",
        ),
        (
            "{loader: pipeline:missing}",
            "perf-gate.yaml: models.p.data.loader: module 'pipeline' has no attribute 'missing'",
        ),
    ],
)
def test_a_broken_loader_is_one_line(tmp_path: Path, data: str, message: str) -> None:
    repo = write_files(
        tmp_path,
        {
            "perf-gate.yaml": f"models:\n  p: {{data: {data}}}\nmeasure: {{rounds: 2}}\n",
            "pipeline.py": PIPELINE,
        },
    )
    ran = run_cli(repo, "run")
    assert ran.ret in (2, 3), ran.output
    assert message in ran.output
    assert "Traceback" not in ran.output


@pytest.mark.slow
def test_pytest_perf_gate_collects_the_pipeline_and_fails_a_broken_one_in_one_line(
    tmp_path: Path,
) -> None:
    config = (
        "models:\n"
        "  good: {data: {loader: pipeline:serial, batches: 4}}\n"
        "  bad: {data: {loader: pipeline:empty}}\n"
        "measure: {rounds: 2}\n"
    )
    pipeline = PIPELINE + "\n\ndef empty():\n    return iter(())\n"
    repo = write_files(
        tmp_path, {"perf-gate.yaml": config, "pipeline.py": pipeline, "pytest.ini": "[pytest]\n"}
    )
    ran = run_pytest(repo, "--perf-gate", "--collect-only", "-q")
    assert "perf-gate.yaml::good[data]" in ran.output, ran.output
    assert "perf-gate.yaml::bad[data]" in ran.output
    ran = run_pytest(repo, "--perf-gate", "-k", "bad")
    assert ran.ret == 1, ran.output
    assert "bad[data]: models.bad.data.loader: the loader yielded no batch" in ran.output
    assert "Traceback" not in ran.output


RAISES = """
import threading

import torch
from torch import nn


class Flaky(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(16, 4)

    def forward(self, x):
        if threading.current_thread() is not threading.main_thread():  # under load only
            raise RuntimeError("feature store timed out")
        return self.linear(x)


def build():
    return Flaky().eval()
"""


@pytest.mark.parametrize(
    ("load", "message", "code"),
    [
        ("{rate: 0, duration: 1s}", "perf-gate.yaml: models.m.load.rate: must be above 0", 2),
        ("{rate: -3, duration: 1s}", "models.m.load.rate: must not be negative", 2),
        ("{rate: 100, duration: 1s}", "models.m.load.percentiles[2]: p99 needs at least 459", 2),
        ("{rate: 100, duration: 7200s}", "models.m.load.duration: must be at most 3600s", 2),
        pytest.param(
            "{rate: 500, queries: 500}",
            "error: round 1: load: 500 of 500 queries raised (RuntimeError: feature store timed",
            3,
            marks=pytest.mark.slow,
        ),
    ],
)
def test_bad_load_settings_and_raising_queries_are_one_line(
    tmp_path: Path, load: str, message: str, code: int
) -> None:
    config = (
        "models:\n  m:\n    torch: model:build\n    input: {shape: [1, 16]}\n"
        f"    variants: [torch]\n    metrics: [latency]\n    load: {load}\n"
        "measure: {rounds: 2, warmup: 2, min_calls: 10, min_time: 0.01s}\n"
        "policy: {diagnose: never}\n"
    )
    repo = write_files(tmp_path, {"perf-gate.yaml": config, "model.py": RAISES})
    ran = run_cli(repo, "run")
    assert ran.ret == code, ran.output
    assert message in ran.output
    assert "Traceback" not in ran.output
