"""gate.measure.worker.memory on the real kernel: a process's own peak (VmHWM) against
``ru_maxrss``,
which a freshly exec'd child inherits from its parent, and how the record's info names the
reading a probe used."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gate.measure import BenchmarkPlan
from gate.measure.samples import memory_peak_since, record_info, round_cost
from gate.measure.worker.memory import (
    current_rss_bytes,
    high_water_rss_bytes,
    peak_rss_bytes,
    peak_source,
    reset_peak_rss,
    ru_maxrss_bytes,
)

MIB = 2**20
linux = pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs /proc (Linux)")

READINGS = """
import json
from gate.measure.worker.memory import peak_rss_bytes, peak_source, reset_peak_rss, ru_maxrss_bytes
readings = {"peak": peak_rss_bytes(), "source": peak_source(), "ru_maxrss": ru_maxrss_bytes()}
readings["reset"] = reset_peak_rss()
readings["ru_maxrss_after_reset"] = ru_maxrss_bytes()
print(json.dumps(readings))
"""


def child_readings() -> dict[str, int | str]:
    """The readings of a fresh interpreter started from this process."""
    completed = subprocess.run(
        [sys.executable, "-c", READINGS], capture_output=True, text=True, check=True
    )
    readings: dict[str, int | str] = json.loads(completed.stdout)
    return readings


@linux
def test_a_fresh_process_peak_is_its_own_not_its_launchers():
    small = child_readings()
    held = b"\x01" * (400 * MIB)  # every page written: resident in this process
    big = child_readings()
    del held
    assert small["source"] == big["source"] == "VmHWM"
    # the child's own peak does not see the 400 MiB its parent held when it started it
    assert abs(int(big["peak"]) - int(small["peak"])) < 8 * MIB
    assert int(big["peak"]) < 100 * MIB
    # ru_maxrss does: Linux keeps it across exec, starting from the parent's peak at fork,
    # and resetting the high-water mark does not take that inherited part away
    assert int(big["ru_maxrss"]) > 400 * MIB
    if big["reset"]:
        assert int(big["ru_maxrss_after_reset"]) > 400 * MIB


@linux
def test_peak_is_vmhwm_and_a_reset_restarts_it():
    assert peak_source() == "VmHWM"
    assert peak_rss_bytes() == high_water_rss_bytes()
    spike = b"\x01" * (200 * MIB)
    del spike
    before = peak_rss_bytes()
    current = current_rss_bytes()
    assert current is not None
    assert before >= current + 150 * MIB
    if not reset_peak_rss():
        pytest.skip("this kernel cannot reset the high-water mark")
    after = peak_rss_bytes()
    assert after < before - 150 * MIB  # VmHWM restarted from the current RSS


def test_without_proc_the_peak_falls_back_to_ru_maxrss(tmp_path):
    missing = tmp_path / "no-proc" / "status"
    assert peak_source(missing) == "ru_maxrss"
    assert peak_rss_bytes(missing) == pytest.approx(ru_maxrss_bytes(), rel=0.01)
    assert high_water_rss_bytes(missing) is None
    assert current_rss_bytes(missing) is None
    assert not reset_peak_rss(tmp_path / "no-proc" / "clear_refs")


def test_status_fields_are_read_in_bytes(tmp_path):
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n", encoding="utf-8")
    assert peak_source(status) == "VmHWM"
    assert peak_rss_bytes(status) == 2048 * 1024
    assert current_rss_bytes(status) == 1024 * 1024


PLAN = BenchmarkPlan(
    name="m[onnxruntime]",
    model="m",
    variant="onnxruntime",
    root=".",
    onnx="/cache/m-0123456789abcdef0123.onnx",
    metrics=("latency", "memory"),
)


def probe(**fields: object) -> dict[str, object]:
    return {"import_s": 0.1, "peak_since": "imports", "peak_source": "VmHWM", **fields}


@pytest.mark.parametrize(
    ("probes", "start"),
    [
        ([probe(), probe()], "imports (VmHWM reset after them)"),
        ([probe(), probe(peak_since="process start")], "process start (VmHWM: "),
        (
            [probe(), probe(peak_since="process start", peak_source="ru_maxrss")],
            "process start (ru_maxrss: no /proc here",
        ),
    ],
)
def test_info_names_the_least_exact_peak_reading(probes, start):
    assert memory_peak_since(probes).startswith(start)
    assert record_info(PLAN, probes, None)["memory_peak_since"].startswith(start)


def test_info_names_the_runtimes_a_probe_imported_and_the_onnx_file_measured():
    info = record_info(PLAN, [probe(runtimes=["onnxruntime"])], None)
    assert info["probe_runtimes"] == ["onnxruntime"]
    assert info["onnx_file"] == "m-0123456789abcdef0123.onnx"


def test_round_cost_is_the_median_of_each_part_over_rounds():
    costs = [
        {"import_s": 1.0, "load_s": 0.2, "inputs_s": 0.0, "warmup_s": 0.1, "timing_s": 0.5},
        {"import_s": 3.0, "load_s": 0.4, "inputs_s": 0.0, "warmup_s": 0.3, "timing_s": 0.7},
        {"import_s": 0.0, "load_s": 0.3, "inputs_s": 0.0, "warmup_s": 0.2, "timing_s": 0.6},
    ]
    assert round_cost(costs) == {
        "import_s": 1.0,
        "load_s": 0.3,
        "inputs_s": 0.0,
        "warmup_s": 0.2,
        "timing_s": 0.6,
        "rounds": 3,
    }
    assert record_info(PLAN, [], None, costs)["round_cost"]["rounds"] == 3
    assert "round_cost" not in record_info(PLAN, [], None)
