"""What a round measures once (a load run's percentiles, a data pipeline's rate) becoming
samples and notes, and how a data pipeline's batches are counted."""

from __future__ import annotations

import numpy as np
import pytest

from gate.config.load import LoadSpec
from gate.core.types import Direction
from gate.measure import BenchmarkPlan
from gate.measure.messages import BenchmarkRound, RoundValue
from gate.measure.paired import alone
from gate.measure.samples import round_samples, rounds_notes
from gate.measure.worker.data import bytes_in, items_in

torch = pytest.importorskip("torch")


def entry(p99: float, achieved: float | None) -> BenchmarkRound:
    values = {"latency.p99@200qps": RoundValue(value=p99, unit="s", higher=False)}
    if achieved is not None:
        values["load.achieved@200qps"] = RoundValue(value=achieved, unit="items/s", higher=True)
    timed = {"first_call": 1e-3, "value": 1e-4, "median": 1e-4, "calls": [1e-4]}
    return BenchmarkRound(batches={"1": timed}, threading={}, values=values)


def test_a_rounds_values_become_one_sample_each_after_the_timings() -> None:
    plan = BenchmarkPlan(name="m[torch]", model="m", variant="torch", root=".", load={})
    samples = round_samples(plan, [entry(0.004, 199.0), entry(0.005, 201.0)])
    assert [s.metric.name for s in samples] == [
        "latency",
        "latency.p99@200qps",
        "load.achieved@200qps",
    ]
    p99, achieved = samples[1], samples[2]
    assert p99.values == (0.004, 0.005)
    assert p99.metric.direction is Direction.LOWER
    assert achieved.metric.direction is Direction.HIGHER
    assert achieved.metric.unit == "items/s"


def test_a_value_some_round_lacks_is_left_out_not_filled() -> None:
    plan = BenchmarkPlan(name="m[torch]", model="m", variant="torch", root=".")
    names = [s.metric.name for s in round_samples(plan, [entry(0.004, 199.0), entry(0.005, None)])]
    assert names == ["latency", "latency.p99@200qps"]


def test_the_notes_summarise_load_runs_searches_and_pipelines() -> None:
    load = {"offered": 600, "completed": 598, "dropped": 2, "mean_batch": 3.4}
    load |= {"lateness_p99": 80e-6, "search_probes": 6, "search_s": 7.5}
    data = {"items": 2560, "bytes": 30720, "bytes_per_s": 1.5e6, "batches": 40}
    data |= {"main_cpu": 0.2, "worker_cpu": [0.5, 0.7]}
    notes = rounds_notes([load, {**load, "search_exhausted": True}, data])
    assert notes[0] == (
        "load: 598 of 600 queries served per round (median), 2 dropped, mean batch 3.4, "
        "the scheduler's lateness p99 80 us"
    )
    assert notes[1] == (
        "max-rate search: 6 load runs in 7.5 s per round (median); 1 round(s) hit "
        "search_budget before 5% precision"
    )
    assert notes[2] == (
        "data: 2560 items (30.7 kB) in 40 batches timed per round, 1.5 MB/s (median); the main "
        "process used 0.20 of a core, each of its 2 loader worker process(es) 0.60 (median; "
        "0.50 to 0.70)"
    )


@pytest.mark.parametrize(
    ("batch", "items", "size"),
    [
        (np.zeros((32, 8), dtype=np.float32), 32, 1024),
        ((torch.zeros(16, 4), torch.zeros(16, dtype=torch.int64)), 16, 256 + 128),
        ({"pixels": np.zeros((8, 2)), "label": np.zeros(8)}, 8, 128 + 64),
        ([b"abc", b"de"], 2, 5),
        (["one", "two", "three"], 3, 11),
        (7, 1, 0),
    ],
)
def test_a_batchs_items_and_bytes(batch: object, items: int, size: int) -> None:
    assert items_in(batch) == items
    assert bytes_in(batch) == size


def test_a_pyarrow_batch_counts_its_rows() -> None:
    pa = pytest.importorskip("pyarrow")
    table = pa.table({"x": np.arange(10, dtype=np.float64)})
    assert items_in(table) == 10
    assert bytes_in(table) == 80


def test_batched_loads_pad_to_powers_of_two_and_the_maximum() -> None:
    assert LoadSpec(rate=1, queries=1, max_batch=1).batch_sizes == (1,)
    assert LoadSpec(rate=1, queries=1, max_batch=6).batch_sizes == (1, 2, 4, 6)
    plan = BenchmarkPlan(
        name="m[torch]",
        model="m",
        variant="torch",
        root=".",
        batch_sizes=(1, 32),
        load=LoadSpec(rate=1, queries=1, max_batch=8).to_dict(),
    )
    assert plan.input_batch_sizes == (1, 2, 4, 8, 32)


def test_load_and_data_plans_never_run_side_by_side() -> None:
    plain = BenchmarkPlan(name="m[torch]", model="m", variant="torch", root=".")
    served = BenchmarkPlan(name="m[torch]", model="m", variant="torch", root=".", load={})
    data = BenchmarkPlan(name="m[data]", model="m", variant="data", root=".", data={})
    assert (alone(plain), alone(served), alone(data)) == (False, True, True)


@pytest.mark.parametrize(
    ("name", "profiled"),
    [
        ("latency", True),
        ("throughput@32", True),
        ("latency.tokenize", True),
        ("latency.p99@200qps", False),
        ("load.achieved@200qps", False),
        ("max_qps@p99<20ms", False),
        ("data.items_per_s", False),
        ("cold_start.first_batch", False),
    ],
)
def test_a_diagnosis_profiles_per_call_timings_only(name: str, profiled: bool) -> None:
    from gate.core.types import Metric
    from gate.diagnose.diff import per_call

    assert per_call(name, Metric(name, "s", Direction.LOWER).family) is profiled
