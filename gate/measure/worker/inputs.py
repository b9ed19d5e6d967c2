"""A model's own inputs, made in the worker: the ``input:`` callable's result, or seeded random
arrays of ``input: {shape, dtype}``. Both backends take their inputs from here, so torch and
onnxruntime variants are timed (and compared for parity) on identical arrays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gate.measure import BenchmarkPlan, resolve_callable

# the .npz entries of calibration batches (gate.measure.quant_inputs) besides the arrays
CALIBRATION_KINDS = "kind"
CALIBRATION_SOURCE = "source"
# dtypes numpy lacks, generated as the nearest one it has (torch casts them back)
_NUMPY_DTYPES = {"bfloat16": "float32"}


def random_inputs(plan: BenchmarkPlan, batch_size: int, seed: int = 0) -> Any:
    """The array of ``input: {shape, dtype}`` at ``batch_size``: one seeded numpy generator,
    so every variant of every runtime gets the same numbers (normal for floats, 0..9 for
    integers, fair coins for bool); timing always uses seed 0."""
    rng = np.random.default_rng(seed)
    shape = (batch_size, *plan.input_shape[1:])
    dtype = _NUMPY_DTYPES.get(plan.input_dtype, plan.input_dtype)
    if dtype.startswith("float"):
        return rng.standard_normal(shape, dtype=np.float32).astype(dtype)
    if dtype == "bool":
        return rng.random(shape) > 0.5
    return rng.integers(0, 10, shape).astype(dtype)


def plan_inputs(plan: BenchmarkPlan, batch_size: int, seed: int = 0) -> Any:
    """The plan's own inputs at ``batch_size``: its ``input:`` callable's result, else
    ``random_inputs`` from ``seed``."""
    if plan.input_callable:
        make = resolve_callable(plan.input_callable, plan.key("input"), ("batch_size",))
        return make(batch_size)
    return random_inputs(plan, batch_size, seed)


def read_calibration(path: Path) -> tuple[str, list[Any]]:
    """Calibration batches written by ``gate.measure.quant_inputs.write``: (where they came
    from, the batches as given: a dict, a tuple or one array each)."""
    with np.load(path, allow_pickle=False) as data:
        kinds = [str(k) for k in data[CALIBRATION_KINDS]]
        source = str(data[CALIBRATION_SOURCE])
        entries = {
            name: data[name]
            for name in data.files
            if name not in (CALIBRATION_KINDS, CALIBRATION_SOURCE)
        }
    found: list[Any] = []
    for index, kind in enumerate(kinds):
        prefix = f"{index}."
        mine = {n.removeprefix(prefix): a for n, a in entries.items() if n.startswith(prefix)}
        if kind == "dict":
            found.append(mine)
        elif kind == "sequence":
            found.append(tuple(mine[f"arg{i}"] for i in range(len(mine))))
        else:
            found.append(mine["arg0"])
    return source, found
