"""Calibration inputs for static int8 quantization: the activations' ranges are measured on
examples like the ones the model will see.

The source, in order of preference: the model's eval set (its first batches, up to
``MAX_EXAMPLES`` examples), else its ``input:`` callable (called at ``BATCH`` examples,
``BATCHES`` times), else its random ``input: {shape, dtype}`` arrays (``BATCHES`` seeds).
Preparation writes them once per run as one .npz under the cache folder, named by the
arrays' digest (``write``); the quantizers read them back as the inputs were given: a dict of
arrays by name, a tuple, or one array per batch (``gate.measure.worker.inputs.read_calibration``).
numpy only: an onnxruntime quantizer needs no torch, a torch worker converts what it reads.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from gate.errors import MeasurementError
from gate.measure import BenchmarkPlan, artifacts
from gate.measure.worker.inputs import CALIBRATION_KINDS, CALIBRATION_SOURCE

BATCH = 8
BATCHES = 4
MAX_EXAMPLES = 256


def batches(plan: BenchmarkPlan, eval_spec: dict[str, Any] | None) -> tuple[str, list[Any]]:
    """(a description of the source, the calibration batches as the model takes its inputs)."""
    if eval_spec is not None:
        from gate.measure.worker.accuracy import eval_batches

        found: list[Any] = []
        examples = 0
        for inputs, _targets in eval_batches(eval_spec):
            found.append(inputs)
            examples += _length(inputs)
            if examples >= MAX_EXAMPLES:
                break
        if found:
            return f"{examples} examples of the eval set", found
    from gate.measure.worker.inputs import plan_inputs

    made = [plan_inputs(plan, BATCH, seed) for seed in range(BATCHES)]
    what = "its input callable" if plan.input_callable else "random inputs"
    return f"{BATCHES} batches of {BATCH} from {what}", made


def _length(inputs: Any) -> int:
    if isinstance(inputs, dict):
        inputs = next(iter(inputs.values()))
    elif isinstance(inputs, (tuple, list)):
        inputs = inputs[0]
    return int(np.shape(inputs)[0]) if np.ndim(inputs) else 1


def _array(plan: BenchmarkPlan, value: Any) -> Any:
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        if str(value.dtype) in ("torch.bfloat16", "torch.float16"):
            value = value.float()
        value = value.numpy()
    converted = np.asarray(value)
    if converted.dtype.hasobject:
        raise MeasurementError(
            f"{plan.key('input')}: calibration inputs of type {type(value).__name__} are not "
            "numeric arrays",
            slug="inputs",
        )
    return converted


def write(plan: BenchmarkPlan, eval_spec: dict[str, Any] | None, cache_dir: Path) -> Path:
    """The calibration batches as one .npz in ``cache_dir`` (kept when unchanged); its
    ``source`` entry says where they came from."""
    source, found = batches(plan, eval_spec)
    payload: dict[str, Any] = {CALIBRATION_SOURCE: np.array(source)}
    kinds = []
    for index, inputs in enumerate(found):
        if isinstance(inputs, dict):
            kinds.append("dict")
            entries = {str(k): v for k, v in inputs.items()}
        elif isinstance(inputs, (tuple, list)):
            kinds.append("sequence")
            entries = {f"arg{i}": v for i, v in enumerate(inputs)}
        else:
            kinds.append("single")
            entries = {"arg0": inputs}
        for name, value in entries.items():
            payload[f"{index}.{name}"] = _array(plan, value)
    payload[CALIBRATION_KINDS] = np.array(kinds)
    digest = hashlib.sha256()
    for name in sorted(payload):
        array = np.ascontiguousarray(payload[name])
        digest.update(f"{name} {array.dtype.str} {array.shape}".encode())
        digest.update(array.tobytes())
    target = cache_dir / f"{plan.model}-calibration-{digest.hexdigest()[:16]}.npz"
    if not artifacts.reuse(target):
        partial = artifacts.partial_file(cache_dir, target.stem)
        try:
            with partial.open("wb") as stream:
                np.savez(stream, **payload)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        artifacts.publish(partial, target)
    artifacts.prune(cache_dir, artifacts.calibration_family(plan.model))
    return target
