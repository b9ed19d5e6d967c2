"""Evaluation throughput of perf-gate's eval harness against a plain loop, same model and data.

    .venv/bin/python bench/accuracy_eval.py [--examples 10000] [--repeats 5]

Both sides run in this process after the imports, on the same 10,000-example .npz set, at batch
size 256, and include building the model: the plain loop is `model(x).argmax(1) == y` over
slices; the harness is `gate.measure.worker.accuracy.run_eval` (reads the .npz, hashes the arrays,
runs the batches, keeps the per-example outcomes, computes accuracy and f1_macro). Each side's
time is the median of --repeats alternated runs; the table prints examples/s and the overhead.
Goal: the harness costs < 5% over the plain loop.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import torch

from gate.measure import BenchmarkPlan
from gate.measure.worker.accuracy import run_eval
from gate.measure.worker.main import describe

MODELS = {
    # name: (input features, hidden widths, classes)
    "digits-sized MLP (64-128-10)": (64, (128,), 10),
    "MNIST-sized MLP (784-1024-1024-10)": (784, (1024, 1024), 10),
}
MODULE = textwrap.dedent(
    """
    import torch
    from torch import nn

    def build(features, hidden, classes):
        torch.manual_seed(0)
        layers, width = [], features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, classes))
        return nn.Sequential(*layers).eval()
    """
)


def plain_loop(build: object, data: Path, batch_size: int) -> float:
    started = time.perf_counter()
    model = build()  # type: ignore[operator]
    with np.load(data) as stored:
        x, y = stored["x"], stored["y"]
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(y), batch_size):
            out = model(torch.from_numpy(x[start : start + batch_size]))
            correct += int((out.argmax(1).numpy() == y[start : start + batch_size]).sum())
    assert correct >= 0
    return time.perf_counter() - started


def harness(plan: BenchmarkPlan, data: Path, batch_size: int) -> float:
    spec = {
        "eval": {
            "data": str(data),
            "x": ["x"],
            "y": "y",
            "task": "classification",
            "batch_size": batch_size,
            "dtype": None,
            "metrics": ["accuracy", "f1_macro"],
            "custom": [],
        },
        "reference": None,
        "bounds": {},
    }
    started = time.perf_counter()
    result = run_eval([plan], spec, describe)
    elapsed = time.perf_counter() - started
    if result.get("errors"):
        raise SystemExit(f"harness failed: {result['errors']}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--quick", action="store_true", help="three repeats")
    args = parser.parse_args()
    if args.quick:
        args.repeats = 3
    torch.set_num_threads(1)
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        (root / "benchmodel.py").write_text(MODULE, encoding="utf-8")
        sys.path.insert(0, str(root))
        import benchmodel

        for name, (features, hidden, classes) in MODELS.items():
            rng = np.random.default_rng(0)
            data = root / f"eval-{features}.npz"
            np.savez(
                data,
                x=rng.standard_normal((args.examples, features)).astype(np.float32),
                y=rng.integers(0, classes, args.examples),
            )
            factory = f"factory_{features}"
            setattr(
                benchmodel,
                factory,
                lambda f=features, h=hidden, c=classes: benchmodel.build(f, h, c),
            )
            plan = BenchmarkPlan(
                name="bench[torch]",
                model="bench",
                variant="torch",
                root=str(root),
                torch=f"benchmodel:{factory}",
                input_shape=(1, features),
            )
            plain_times, harness_times = [], []
            plain_loop(getattr(benchmodel, factory), data, args.batch_size)  # warm caches
            harness(plan, data, args.batch_size)
            for _ in range(args.repeats):
                plain_times.append(plain_loop(getattr(benchmodel, factory), data, args.batch_size))
                harness_times.append(harness(plan, data, args.batch_size))
            plain, harnessed = statistics.median(plain_times), statistics.median(harness_times)
            rows.append(
                (
                    name,
                    f"{args.examples / plain:,.0f}",
                    f"{args.examples / harnessed:,.0f}",
                    f"{(harnessed / plain - 1) * 100:+.1f}%",
                    f"{min(plain_times) * 1e3:.0f}-{max(plain_times) * 1e3:.0f} / "
                    f"{min(harness_times) * 1e3:.0f}-{max(harness_times) * 1e3:.0f}",
                )
            )
    header = ("model", "plain ex/s", "harness ex/s", "overhead", "range ms (plain / harness)")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(
        f"{args.examples:,} examples, batch {args.batch_size}, 1 thread, median of {args.repeats}"
    )
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
