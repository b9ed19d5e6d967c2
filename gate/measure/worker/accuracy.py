"""Evaluation inside a worker process: eval batches -> predictions -> quality metrics + parity.

All variants of one model are loaded in one process and fed the same batches, so the eval set
is read once and every variant sees identical inputs; the reference variant's outputs are kept
to judge the others' parity. Without an eval set, parity is judged on the model's own inputs,
made once (from the reference's plan) and fed to every variant: an ``input:`` callable that is
not seeded, or two runtimes' random generators, would otherwise compare outputs of different
inputs. Evaluation is deterministic, so one process suffices (timing needs fresh processes;
quality does not). Bad input (NaN outputs, shapes that do not match the targets, labels outside
the model's classes, an empty set) fails that variant with a one-line reason; the others go on.

"""

from __future__ import annotations

import hashlib
import math
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from gate.config.quality import DEFAULT_TIES, LOOSE_BOUNDS
from gate.errors import ConfigError, MeasurementError
from gate.measure import Backend, BenchmarkPlan, resolve_callable
from gate.measure.backends import get_backend
from gate.measure.worker.inputs import plan_inputs

Batch = tuple[Any, Any]
MAX_EXAMPLES = 100_000  # per-example outcomes kept for paired comparisons, at most
PROGRESS_EVERY_S = 2.0
# Without an eval set, parity compares the model's own inputs: PARITY_SEEDS batches of
# PARITY_BATCH examples (random ones from different seeds), then the plan's other batch sizes,
# PARITY_BATCHES batches at most.
PARITY_BATCH = 8
PARITY_SEEDS = 3
PARITY_BATCHES = 5


# --------------------------------------------------------------------------------------------
# Eval sets


def _as_numpy(value: Any) -> Any:
    if hasattr(value, "detach"):
        if str(value.dtype) in ("torch.bfloat16", "torch.float16"):
            value = value.float()
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _cast(inputs: Any, dtype: str | None) -> Any:
    if dtype is None:
        return inputs
    if isinstance(inputs, dict):
        return {k: _cast(v, dtype) for k, v in inputs.items()}
    if isinstance(inputs, tuple):
        return tuple(_cast(v, dtype) for v in inputs)
    return _as_numpy(inputs).astype(dtype)


def _npz_batches(path: Path, spec: dict[str, Any]) -> Iterator[Batch]:
    with np.load(path, allow_pickle=False) as data:
        names = [*list(spec["x"]), spec["y"]]
        missing = [n for n in names if n not in data.files]
        if missing:
            raise ConfigError(
                f"{path.name}: no array named {', '.join(map(repr, missing))}; it holds "
                f"{', '.join(data.files)} (set eval.x / eval.y in the config)",
                slug="eval-data",
            )
        xs = [data[name] for name in spec["x"]]
        y = data[spec["y"]]
    yield from _slices(xs, y, spec["batch_size"], path.name)


def _parquet_batches(path: Path, spec: dict[str, Any]) -> Iterator[Batch]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError(
            f"{path.name}: reading Parquet eval sets needs pyarrow; install it with "
            "pip install 'perf-gate[parquet]'",
            slug="eval-data",
        ) from None
    table = pq.read_table(path)
    names = [*list(spec["x"]), spec["y"]]
    missing = [n for n in names if n not in table.column_names]
    if missing:
        raise ConfigError(
            f"{path.name}: no column named {', '.join(map(repr, missing))}; it has "
            f"{', '.join(table.column_names)} (set eval.x / eval.y in the config)",
            slug="eval-data",
        )
    columns = [_column(table, n) for n in spec["x"]]
    # Several scalar columns are the features of one input; one list column is one input.
    x = np.stack(columns, axis=1) if len(columns) > 1 else columns[0]
    y = _column(table, spec["y"])
    yield from _slices([x], y, spec["batch_size"], path.name)


def _column(table: Any, name: str) -> Any:
    """A column as numpy in its own dtype; a column of lists becomes one stacked array."""
    values = table.column(name).to_numpy()
    return np.stack(list(values)) if values.dtype == object else values


def _slices(xs: list[Any], y: Any, batch_size: int, label: str) -> Iterator[Batch]:
    if any(len(x) != len(y) for x in xs):
        raise MeasurementError(
            f"{label}: inputs have {[len(x) for x in xs]} rows but the targets {len(y)}",
            slug="eval-data",
        )
    for start in range(0, len(y), batch_size):
        stop = start + batch_size
        parts = tuple(x[start:stop] for x in xs)
        yield (parts[0] if len(parts) == 1 else parts), y[start:stop]


def _callable_batches(reference: str, label: str) -> Iterator[Batch]:
    produced = resolve_callable(reference)()
    for index, item in enumerate(produced):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise MeasurementError(
                f"{label}: batch {index} is not an (inputs, targets) pair", slug="eval-data"
            )
        yield item[0], item[1]


def eval_batches(spec: dict[str, Any]) -> Iterator[Batch]:
    """The eval set's batches as (inputs, targets); targets as numpy arrays."""
    if spec.get("callable"):
        source = _callable_batches(spec["callable"], spec["callable"])
    else:
        path = Path(spec["data"])
        reader = _parquet_batches if path.suffix == ".parquet" else _npz_batches
        source = reader(path, spec)
    for inputs, targets in source:
        yield _cast(inputs, spec.get("dtype")), _as_numpy(targets)


def _update_hash(digest: Any, value: Any) -> None:
    if isinstance(value, dict):
        for key in sorted(value):
            digest.update(key.encode())
            _update_hash(digest, value[key])
    elif isinstance(value, (tuple, list)):
        for item in value:
            _update_hash(digest, item)
    else:
        array = np.ascontiguousarray(_as_numpy(value))
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array)  # the buffer itself: no copy (object arrays are refused by numpy)


# --------------------------------------------------------------------------------------------
# Metrics (numpy); ``outcomes`` are per example


def _check_classification(outputs: Any, targets: Any) -> tuple[Any, Any]:
    if outputs.ndim != 2:
        raise MeasurementError(
            f"classification needs outputs of shape [examples, classes], got {list(outputs.shape)}",
            slug="eval-shape",
        )
    labels = targets.reshape(-1)
    if labels.shape[0] != outputs.shape[0]:
        raise MeasurementError(
            f"{outputs.shape[0]} predictions but {labels.shape[0]} targets", slug="eval-shape"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.all(np.equal(np.mod(labels, 1), 0)):
            raise MeasurementError(
                "classification targets must be class indices", slug="eval-shape"
            )
        labels = labels.astype(np.int64)
    classes = outputs.shape[1]
    outside = (labels < 0) | (labels >= classes)
    if outside.any():
        bad = labels[outside][0]
        raise MeasurementError(
            f"label {int(bad)} is outside the model's {classes} classes (0..{classes - 1})",
            slug="eval-shape",
        )
    return outputs, labels


def accuracy_outcomes(outputs: Any, targets: Any) -> Any:
    outputs, labels = _check_classification(outputs, targets)
    return (outputs.argmax(axis=1) == labels).astype(np.float64)


def top5_outcomes(outputs: Any, targets: Any) -> Any:
    outputs, labels = _check_classification(outputs, targets)
    if outputs.shape[1] < 5:
        raise MeasurementError(
            f"top5 needs at least 5 classes, the model has {outputs.shape[1]}", slug="eval-shape"
        )
    top = np.argpartition(-outputs, 4, axis=1)[:, :5]
    return (top == labels[:, None]).any(axis=1).astype(np.float64)


def f1_macro(outputs: Any, targets: Any) -> float:
    """Unweighted mean F1 over the classes that occur in the targets or the predictions."""
    outputs, labels = _check_classification(outputs, targets)
    predicted = outputs.argmax(axis=1)
    scores = []
    for cls in np.union1d(labels, predicted):
        true_positive = float(np.sum((predicted == cls) & (labels == cls)))
        false_positive = float(np.sum((predicted == cls) & (labels != cls)))
        false_negative = float(np.sum((predicted != cls) & (labels == cls)))
        denominator = 2 * true_positive + false_positive + false_negative
        scores.append(2 * true_positive / denominator if denominator else 0.0)
    return float(np.mean(scores))


def _regression_pair(outputs: Any, targets: Any) -> tuple[Any, Any]:
    out = outputs.reshape(outputs.shape[0], -1).astype(np.float64)
    tgt = targets.reshape(targets.shape[0], -1).astype(np.float64)
    if out.shape != tgt.shape:
        raise MeasurementError(
            f"predictions of shape {list(outputs.shape)} do not match targets of shape "
            f"{list(targets.shape)}",
            slug="eval-shape",
        )
    return out, tgt


def absolute_errors(outputs: Any, targets: Any) -> Any:
    out, tgt = _regression_pair(outputs, targets)
    return np.abs(out - tgt).mean(axis=1)


def squared_errors(outputs: Any, targets: Any) -> Any:
    out, tgt = _regression_pair(outputs, targets)
    return ((out - tgt) ** 2).mean(axis=1)


def quality(
    spec: dict[str, Any], outputs: Any, targets: Any
) -> tuple[dict[str, float], dict[str, Any]]:
    """(metric -> value, metric -> per-example outcomes) for the configured metrics."""
    values: dict[str, float] = {}
    outcomes: dict[str, Any] = {}
    for name in spec["metrics"]:
        if name == "accuracy":
            outcomes[name] = accuracy_outcomes(outputs, targets)
            values[name] = float(outcomes[name].mean())
        elif name == "top5":
            outcomes[name] = top5_outcomes(outputs, targets)
            values[name] = float(outcomes[name].mean())
        elif name == "f1_macro":
            values[name] = f1_macro(outputs, targets)
        elif name == "mae":
            outcomes[name] = absolute_errors(outputs, targets)
            values[name] = float(outcomes[name].mean())
        elif name == "rmse":
            outcomes[name] = squared_errors(outputs, targets)
            values[name] = float(math.sqrt(outcomes[name].mean()))
    for custom in spec.get("custom", []):
        function = resolve_callable(custom["function"], None, ("predictions", "targets"))
        try:
            value = float(function(outputs, targets))
        except Exception as exc:
            raise MeasurementError(
                f"custom metric {custom['name']} ({custom['function']}) raised "
                f"{type(exc).__name__}: {exc}",
                slug="eval-metric",
            ) from exc
        if not math.isfinite(value):
            raise MeasurementError(
                f"custom metric {custom['name']} returned {value}", slug="eval-metric"
            )
        values[custom["name"]] = value
    return values, outcomes


# Below 1 / (1 - bound) examples, a top-1 bound fails only when the disagreements would be this
# unlikely (exact binomial tail) for a variant that just meets it.
TOP1_FEW_EXAMPLES_LEVEL = 0.01


def _binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    return sum(math.comb(n, i) * p**i * (1.0 - p) ** (n - i) for i in range(k, n + 1))


def parity(
    reference: Any, outputs: Any, bounds: dict[str, Any], task: str, hint: str = ""
) -> dict[str, Any]:
    """How far ``outputs`` are from the reference's, and whether that is within ``bounds``;
    ``hint`` (how the variant was made) joins the reason when they are not."""
    if reference.shape != outputs.shape:
        return {
            "ok": False,
            "reason": f"output shape {list(outputs.shape)} differs from the reference's "
            f"{list(reference.shape)}" + (f"; likely cause: {hint}" if hint else ""),
        }
    ref = reference.astype(np.float64)
    out = outputs.astype(np.float64)
    diff = np.abs(out - ref)
    result: dict[str, Any] = {
        "max_abs_diff": float(diff.max()) if diff.size else 0.0,
        "mean_abs_diff": float(diff.mean()) if diff.size else 0.0,
        "top1_agreement": None,
        "bounds": bounds,
    }
    reasons: list[str] = []
    ok = True
    if task == "classification" and ref.ndim == 2:
        ok = _top1(ref, out, diff, bounds, result, reasons)
    if bounds.get("atol") is not None:
        excess = diff - bounds.get("rtol", 0.0) * np.abs(ref)
        worst = float(excess.max()) if excess.size else 0.0
        if worst > bounds["atol"]:
            ok = False
            reasons.append(
                f"max |diff| {result['max_abs_diff']:.3g} exceeds atol {bounds['atol']:g} + "
                f"rtol {bounds.get('rtol', 0.0):g} x |reference|"
            )
    if not ok:
        cause = "; ".join(c for c in (likely_cause(ref, out, bounds), hint) if c)
        if cause:
            reasons.append(f"likely cause: {cause}")
    result["ok"] = ok
    result["reason"] = "; ".join(reasons)
    return result


def _top1(
    ref: Any,
    out: Any,
    diff: Any,
    bounds: dict[str, Any],
    result: dict[str, Any],
    reasons: list[str],
) -> bool:
    """Top-1 agreement on the examples that are not near-ties (their reference's two best
    outputs more than ``ties`` x its largest |output| apart); near-ties are counted. When every
    example is a near-tie, the outputs are held to the loose absolute bounds instead (unless
    the variant has bounds of its own)."""
    ok = True
    wanted = bounds.get("top1_agreement")
    share = float(bounds.get("ties", DEFAULT_TIES))
    if ref.shape[1] >= 2:
        best_two = np.sort(ref, axis=1)[:, -2:]
        tied = (best_two[:, 1] - best_two[:, 0]) <= share * np.abs(ref).max(axis=1)
    else:
        tied = np.zeros(len(ref), dtype=bool)
    counted = int((~tied).sum())
    result["near_ties"] = int(tied.sum())
    agree = ref.argmax(axis=1) == out.argmax(axis=1)
    if counted:
        result["top1_agreement"] = float(agree[~tied].mean())
    if wanted is None:
        pass
    elif not counted:
        result["top1_judged"] = False
        reasons.append(
            f"top-1 agreement not judged: all {len(ref)} examples are near-ties (the reference's "
            f"two best outputs within {share * 100:g}% of its largest, as with random weights); "
            f"outputs held to atol {LOOSE_BOUNDS['atol']:g} + rtol {LOOSE_BOUNDS['rtol']:g} x "
            "|reference| instead"
        )
    else:
        disagree = counted - int(agree[~tied].sum())
        agreement = result["top1_agreement"]
        if (
            agreement < wanted
            and counted * (1.0 - wanted) < 1.0
            and _binomial_tail(disagree, counted, 1.0 - wanted) >= TOP1_FEW_EXAMPLES_LEVEL
        ):
            # One disagreement alone breaches the bound (8 generated examples against 99%), and
            # this many are not unlikely for a variant that meets it: shown, not judged.
            result["top1_judged"] = False
            reasons.append(
                f"top-1 agreement not judged: {disagree} disagreement(s) in {counted} examples "
                f"are too few to tell from >= {wanted * 100:g}%; give the model an eval set"
            )
        elif agreement < wanted:
            ok = False
            reasons.append(f"top-1 agreement {agreement * 100:.2f}% < {wanted * 100:g}%")
    if wanted is not None and not counted and bounds.get("atol") is None:
        # nothing judges this variant's top-1: its outputs are held to the loose bounds
        atol, rtol = LOOSE_BOUNDS["atol"], LOOSE_BOUNDS["rtol"]
        worst = float((diff - rtol * np.abs(ref)).max())
        if worst > atol:
            ok = False
            reasons.append(
                f"the near-tied outputs differ by more than atol {atol:g} + rtol {rtol:g} x "
                f"|reference| (max |diff| {result['max_abs_diff']:.3g})"
            )
    if wanted is not None and counted and result["near_ties"]:
        reasons.append(
            f"{result['near_ties']} of {len(ref)} examples are near-ties (the reference's two "
            f"best outputs within {share * 100:g}% of its largest), not counted in top-1 agreement"
        )
    return ok


def likely_cause(ref: Any, out: Any, bounds: dict[str, Any]) -> str:
    """What a parity failure most likely comes from, judged from where outputs differ."""
    if ref.ndim == 0 or len(ref) == 0:
        return ""
    atol = bounds.get("atol")
    tolerance = (atol if atol is not None else LOOSE_BOUNDS["atol"]) + bounds.get(
        "rtol", LOOSE_BOUNDS["rtol"] if atol is None else 0.0
    ) * np.abs(ref)
    per_example = (np.abs(out - ref) > tolerance).reshape(len(ref), -1).any(axis=1)
    wrong = int(per_example.sum())
    if 0 < wrong < len(ref):
        return (
            f"outputs differ on {wrong} of {len(ref)} examples only: behaviour that depends on "
            "input values (control flow, data-dependent shapes) the variant fixed, or an "
            "operator whose conversion is exact only for some inputs"
        )
    if wrong:
        return (
            "outputs differ on every example: an operator converted differently (check the "
            "exporter's notes and the opset) or a lower-precision dtype"
        )
    return ""


# --------------------------------------------------------------------------------------------
# The worker's eval mode


class _Progress:
    """A line on stderr every few seconds, only when someone is watching (a terminal)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.enabled = sys.stderr.isatty()
        self.last = time.monotonic()

    def update(self, examples: int) -> None:
        now = time.monotonic()
        if self.enabled and now - self.last >= PROGRESS_EVERY_S:
            print(f"perf-gate: evaluating {self.model}: {examples:,} examples", file=sys.stderr)
            self.last = now


def _load(plans: list[BenchmarkPlan], errors: dict[str, str], describe: Any) -> dict[str, Backend]:
    loaded: dict[str, Backend] = {}
    for plan in plans:
        try:
            backend = get_backend(plan)
            backend.import_runtime()
            backend.load()
            loaded[plan.name] = backend
        except Exception as exc:
            errors[plan.name] = describe(exc)
    return loaded


def run_eval(
    plans: list[BenchmarkPlan], spec: dict[str, Any], describe: Callable[[BaseException], str]
) -> dict[str, Any]:
    """Evaluate every variant of one model; ``spec`` holds the eval set (or None: parity on
    generated inputs), the reference variant's name and parity bounds per variant."""
    errors: dict[str, str] = {}
    backends = _load(plans, errors, describe)
    eval_spec = spec.get("eval")
    task = eval_spec["task"] if eval_spec else "classification"
    outputs: dict[str, list[Any]] = {name: [] for name in backends}
    targets: list[Any] = []
    digest = hashlib.sha256()
    progress = _Progress(plans[0].model if plans else "")
    examples = 0
    try:
        batches = (
            eval_batches(eval_spec)
            if eval_spec
            else ((inputs, None) for inputs in _shared_inputs(plans, spec.get("reference")))
        )
        for inputs, batch_targets in batches:
            if eval_spec:
                _update_hash(digest, inputs)
                _update_hash(digest, batch_targets)
                targets.append(batch_targets)
            for name, backend in list(backends.items()):
                try:
                    produced = _as_numpy(backend.predict(inputs))
                    if produced.dtype.kind in "fc" and not np.isfinite(produced).all():
                        raise MeasurementError(
                            "the model produced NaN or inf outputs", slug="eval-nonfinite"
                        )
                    outputs[name].append(produced)
                except Exception as exc:
                    errors[name] = describe(exc)
                    del backends[name]
            examples += len(batch_targets) if batch_targets is not None else 0
            progress.update(examples)
    except Exception as exc:  # the eval set itself failed: every variant gets the reason
        reason = describe(exc) if not isinstance(exc, ConfigError) else exc.message
        return {
            "results": {},
            "errors": {p.name: reason for p in plans},
            "fatal": reason,
            "config_error": isinstance(exc, ConfigError),
        }
    if eval_spec and examples == 0:
        reason = "the eval set is empty"
        return {"results": {}, "errors": {p.name: reason for p in plans}, "fatal": reason}
    joined_targets = np.concatenate(targets) if targets else None
    results: dict[str, Any] = {}
    reference_name = spec.get("reference")
    joined = {
        name: _first_output_array(chunks) for name, chunks in outputs.items() if name in backends
    }
    for plan in plans:
        if plan.name not in backends:
            continue
        entry: dict[str, Any] = {"examples": examples}
        try:
            if eval_spec:
                values, outcomes = quality(eval_spec, joined[plan.name], joined_targets)
                entry["metrics"] = values
                entry["outcomes"] = (
                    {k: v.tolist() for k, v in outcomes.items()} if examples <= MAX_EXAMPLES else {}
                )
                entry["hash"] = digest.hexdigest()[:16]
            if reference_name and plan.name != reference_name and reference_name in joined:
                bounds = spec["bounds"][plan.name]
                hint = "; ".join(n for n in plan.notes if n.startswith("exported with"))
                entry["parity"] = parity(
                    joined[reference_name], joined[plan.name], bounds, task, hint
                )
                entry["parity"]["reference"] = reference_name
        except Exception as exc:
            errors[plan.name] = describe(exc)
            continue
        results[plan.name] = entry
    return {"results": results, "errors": errors}


def _shared_inputs(plans: list[BenchmarkPlan], reference: str | None) -> list[Any]:
    """Parity without an eval set: the model's own inputs, made once from the reference's
    plan (all variants of a model share the ``input:`` setting) for every variant, in
    several batches: ``PARITY_SEEDS`` random batches of ``PARITY_BATCH`` (an ``input:``
    callable is called that often; it may vary its inputs or not), then one at each of the
    plan's other batch sizes (an export can fix a batch size it traced)."""
    source = next((p for p in plans if p.name == reference), plans[0])
    sizes = [PARITY_BATCH] * PARITY_SEEDS + [b for b in source.batch_sizes if b != PARITY_BATCH]
    return [plan_inputs(source, size, seed) for seed, size in enumerate(sizes[:PARITY_BATCHES])]


def _first_output_array(chunks: list[Any]) -> Any:
    return np.concatenate(chunks, axis=0) if chunks else np.zeros((0,))
