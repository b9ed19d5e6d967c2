"""Custom benchmarks for the digits example: ordinary pytest tests using perf-gate's ``perf``."""

import numpy as np
import torch
from model import build, eval_set, example_batch


def test_accuracy_and_batch_latency(perf):
    model = build()
    images, labels = eval_set()
    with torch.inference_mode():
        logits = perf.latency(model, images)
    accuracy = (logits.argmax(1) == labels).float().mean().item()
    assert accuracy > 0.85
    perf.record("accuracy", accuracy, unit="", higher_is_better=True)


def test_preprocessing_throughput(perf):
    batch = example_batch(256).numpy()
    normalised = perf.throughput(lambda: (batch - batch.mean()) / (batch.std() + 1e-6), items=256)
    assert np.isfinite(normalised).all()


def test_pytest_benchmark_still_works(benchmark):
    batch = example_batch(32)
    model = build()
    benchmark(lambda: model(batch))
