"""gate.measure.backends.onnx_int8.choose: which onnxruntime quantization fits a graph."""

from __future__ import annotations

from collections import Counter

import pytest

from gate.measure.backends.onnx_int8 import choose


@pytest.mark.parametrize(
    ("ops", "mode"),
    [
        ({"Conv": 20, "Relu": 20, "Gemm": 1}, "static"),  # a CNN: ConvInteger would be slower
        ({"ConvTranspose": 2}, "static"),
        ({"MatMul": 6, "Softmax": 2, "Gemm": 2}, "dynamic"),  # attention: ranges vary per input
        ({"LSTM": 2, "Gemm": 1}, "dynamic"),
        ({"Gather": 1, "Attention": 1}, "dynamic"),
        ({"Gemm": 3, "Relu": 2}, "static"),  # an MLP: the dynamic quantizer skips Gemm
        ({"Tanh": 1, "Mul": 1, "Add": 1}, None),  # nothing to quantize
        ({}, None),
    ],
)
def test_the_quantization_fits_the_graph(ops: dict[str, int], mode: str | None) -> None:
    assert choose(Counter(ops)) == mode
