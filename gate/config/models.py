"""The ``models:`` section: which model, which inputs, which variants on which device."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gate.config.checks import CALLABLE, MAX_NAME, NAME, Checker, path_value
from gate.config.load import DataSpec, LoadSpec, parse_data, parse_load
from gate.config.quality import MAX_BATCH, EvalSpec, ParitySpec, parse_eval, parse_parity

VARIANTS = (
    "torch",
    "torch-bf16",
    "torch-int8",
    "torch-compile",
    "onnxruntime",
    "onnxruntime-int8",
    "torch-fp16",
    "torch-cuda-graphs",
    "onnxruntime-cuda",
    "onnxruntime-tensorrt",
)
TORCH_ONLY_VARIANTS = frozenset(
    {"torch", "torch-bf16", "torch-int8", "torch-compile", "torch-fp16", "torch-cuda-graphs"}
)
# Variants that exist only on a GPU, and those that exist only on the CPU.
CUDA_ONLY_VARIANTS = frozenset(
    {"torch-fp16", "torch-cuda-graphs", "onnxruntime-cuda", "onnxruntime-tensorrt"}
)
CPU_ONLY_VARIANTS = frozenset({"torch-int8", "onnxruntime", "onnxruntime-int8"})
MODEL_METRICS = ("latency", "throughput", "memory", "cold_start", "gpu_memory")
_DEVICE = re.compile(r"^(cpu|cuda(:[0-9]{1,4})?)$")
DTYPES = ("float32", "float16", "bfloat16", "float64", "int64", "int32", "uint8", "bool")
MAX_THREADS = 1024
MAX_BATCH_SIZES = 16  # each is measured in every round
# Elements of one generated input at the largest batch size: 2**31 float32 are 8 GiB.
MAX_INPUT_ELEMENTS = 2**31
MODEL_KEYS = (
    "torch",
    "onnx",
    "input",
    "variants",
    "metrics",
    "batch_sizes",
    "threads",
    "device",
    "eval",
    "parity",
    "load",
    "data",
)
# The benchmark of a model's ``data:`` pipeline: ``<model>[data]``.
DATA_VARIANT = "data"


@dataclass(frozen=True, kw_only=True)
class InputSpec:
    """Where a model's inputs come from: a ``module:function(batch_size)`` or a random tensor."""

    callable: str | None = None
    shape: tuple[int, ...] = ()
    dtype: str = "float32"


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    name: str
    torch: str | None
    onnx: Path | None
    input: InputSpec
    variants: tuple[str, ...]
    metrics: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    threads: int | None = None
    device: str = "cpu"
    eval: EvalSpec | None = None
    parity: ParitySpec = field(default_factory=ParitySpec)
    load: LoadSpec | None = None
    data: DataSpec | None = None

    @property
    def plan_variants(self) -> tuple[str, ...]:
        """Every benchmark of the model: its variants, then ``data`` for its input pipeline."""
        return (*self.variants, DATA_VARIANT) if self.data else self.variants

    def benchmark_names(self) -> list[str]:
        return [benchmark_name(self.name, variant) for variant in self.plan_variants]


def benchmark_name(model: str, variant: str) -> str:
    return f"{model}[{variant}]"


def parse_model(ctx: Checker, name: str, spec: Any, root: Path) -> ModelSpec:
    key = f"models.{name}"
    if not NAME.match(name) or len(name) > MAX_NAME:
        raise ctx.error(
            key,
            f"model names may use letters, digits, '_', '-' and '.' only, at most {MAX_NAME} "
            "characters",
        )
    spec = ctx.mapping(spec, key, MODEL_KEYS)
    torch_ref = spec.get("torch")
    onnx_ref = spec.get("onnx")
    if torch_ref is None and onnx_ref is None:
        if "data" in spec:  # an input pipeline alone
            return _data_only(ctx, name, spec, key)
        raise ctx.error(
            key,
            "needs 'torch: module:function' or 'onnx: path/to/model.onnx' (or 'data:' alone, "
            "for an input pipeline)",
        )
    if torch_ref is not None and (not isinstance(torch_ref, str) or not CALLABLE.match(torch_ref)):
        raise ctx.error(f"{key}.torch", f"expected 'module:function', got {torch_ref!r}")
    onnx_path: Path | None = None
    if onnx_ref is not None:
        onnx_path = path_value(ctx, onnx_ref, f"{key}.onnx", root)
        if not onnx_path.is_file():
            raise ctx.error(f"{key}.onnx", f"file {onnx_ref!r} not found (relative to {root})")
    on_gpu = str(spec.get("device", "cpu")).startswith("cuda")
    onnx_default = "onnxruntime-cuda" if on_gpu else "onnxruntime"
    default_variants = ["torch", onnx_default] if torch_ref else [onnx_default]
    variants = ctx.string_list(spec.get("variants", default_variants), f"{key}.variants", VARIANTS)
    if torch_ref is None:
        for index, variant in enumerate(variants):
            if variant in TORCH_ONLY_VARIANTS:
                raise ctx.error(
                    f"{key}.variants[{index}]",
                    f"variant {variant!r} needs a torch model; add 'torch: module:function'",
                )
    metrics = ctx.string_list(
        spec.get("metrics", ["latency", "throughput"]), f"{key}.metrics", MODEL_METRICS
    )
    batch_raw = spec.get("batch_sizes", [1])
    if not isinstance(batch_raw, list) or not batch_raw:
        raise ctx.error(f"{key}.batch_sizes", f"expected a list of integers, got {batch_raw!r}")
    if len(batch_raw) > MAX_BATCH_SIZES:
        raise ctx.error(
            f"{key}.batch_sizes",
            f"lists {len(batch_raw)} batch sizes; at most {MAX_BATCH_SIZES} (each is measured "
            "in every round)",
        )
    batch_sizes = tuple(
        ctx.integer(b, f"{key}.batch_sizes[{i}]", 1, MAX_BATCH) for i, b in enumerate(batch_raw)
    )
    threads = spec.get("threads")
    if threads is not None:
        threads = ctx.integer(threads, f"{key}.threads", 1, MAX_THREADS)
    device = _device(ctx, spec.get("device", "cpu"), key, variants, metrics)
    return ModelSpec(
        name=name,
        torch=torch_ref,
        onnx=onnx_path,
        input=_input(ctx, spec.get("input"), f"{key}.input", max(batch_sizes)),
        variants=variants,
        metrics=metrics,
        batch_sizes=batch_sizes,
        threads=threads,
        device=device,
        eval=parse_eval(ctx, spec["eval"], f"{key}.eval", root) if "eval" in spec else None,
        parity=parse_parity(ctx, spec.get("parity"), f"{key}.parity", variants),
        load=parse_load(ctx, spec["load"], f"{key}.load") if "load" in spec else None,
        data=parse_data(ctx, spec["data"], f"{key}.data") if "data" in spec else None,
    )


def _data_only(ctx: Checker, name: str, spec: dict[str, Any], key: str) -> ModelSpec:
    """A ``models:`` entry with only ``data:``: the benchmark ``<name>[data]``."""
    others = sorted(set(spec) - {"data"})
    if others:
        raise ctx.error(
            f"{key}.{others[0]}",
            "needs a model: add 'torch: module:function' or 'onnx: path/to/model.onnx', or "
            "keep only 'data:' for an input pipeline alone",
        )
    return ModelSpec(
        name=name,
        torch=None,
        onnx=None,
        input=InputSpec(),
        variants=(),
        metrics=(),
        batch_sizes=(1,),
        data=parse_data(ctx, spec["data"], f"{key}.data"),
    )


def _device(
    ctx: Checker, value: Any, key: str, variants: tuple[str, ...], metrics: tuple[str, ...]
) -> str:
    """``cpu`` or ``cuda[:N]``; variants and metrics must exist on that device."""
    if not isinstance(value, str) or not _DEVICE.match(value):
        raise ctx.error(f"{key}.device", f"expected cpu, cuda or cuda:N (N < 10000), got {value!r}")
    cuda = value.startswith("cuda")
    for index, variant in enumerate(variants):
        if not cuda and variant in CUDA_ONLY_VARIANTS:
            raise ctx.error(
                f"{key}.variants[{index}]",
                f"variant {variant!r} runs on a GPU only; add 'device: cuda' or remove it",
            )
        if cuda and variant in CPU_ONLY_VARIANTS:
            hint = {"onnxruntime": "onnxruntime-cuda"}.get(variant, "torch-fp16 or torch-bf16")
            raise ctx.error(
                f"{key}.variants[{index}]",
                f"variant {variant!r} runs on the CPU only; on a GPU use {hint}",
            )
    if "gpu_memory" in metrics and not cuda:
        raise ctx.error(f"{key}.metrics", "gpu_memory needs 'device: cuda'")
    return value


def _input(ctx: Checker, value: Any, key: str, batch: int) -> InputSpec:
    if value is None:
        raise ctx.error(
            key, "is required: 'module:function' (called with the batch size) or {shape, dtype}"
        )
    if isinstance(value, str):
        if not CALLABLE.match(value):
            raise ctx.error(key, f"expected 'module:function', got {value!r}")
        return InputSpec(callable=value)
    spec = ctx.mapping(value, key, ("shape", "dtype"))
    shape = spec.get("shape")
    if not isinstance(shape, list) or not shape:
        raise ctx.error(f"{key}.shape", f"expected a list of positive integers, got {shape!r}")
    dims = tuple(
        ctx.integer(d, f"{key}.shape[{i}]", 1, MAX_INPUT_ELEMENTS) for i, d in enumerate(shape)
    )
    elements = batch
    for dim in dims[1:]:  # the first dimension is the batch size
        elements *= dim
    if elements > MAX_INPUT_ELEMENTS:
        raise ctx.error(
            f"{key}.shape",
            f"{[batch, *dims[1:]]} (at the largest batch size) holds {elements:,} elements; at "
            f"most {MAX_INPUT_ELEMENTS:,} (8 GiB of float32)",
        )
    dtype = spec.get("dtype", "float32")
    if dtype not in DTYPES:
        raise ctx.error(
            f"{key}.dtype", f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPES)}"
        )
    return InputSpec(shape=dims, dtype=dtype)
