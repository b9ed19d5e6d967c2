"""Every CPU variant over a zoo of real architectures: what works, what is refused and why.

Goal: an ML engineer's first run on their own architecture either measures the variant it names
or refuses it in one line with the reason; it never times a wrong model (an export that holds
one branch of a data-dependent ``if``), never fails parity on outputs that merely tie, and its
int8 variants quantize what the architecture spends its time in.

The zoo is ``bench/zoo/zoo_models.py`` (random weights, made on the spot): a data-dependent
branch, a transformer-style block called with a dict of named inputs and ``use_cache``-like
keyword arguments, a near-tied classifier, a conv-only net, an LSTM, an element-wise model with
nothing to quantize; plus Hugging Face ``BertModel`` (from a small config) and torchvision's
resnet18 and mobilenet_v3_small where those packages import. Each model gets one
``perf-gate run`` in a temporary folder with every CPU variant; a variant refused at config
time (exit 2) is noted and the run repeated without it.

Prints per model x variant: works / refused / error (with the reason), the median latency at
batch 1, the model size, the parity verdict against torch fp32 (near-ties counted) and, for
torch-compile, the first call of the first worker and of the later ones. Run:
``.venv/bin/python bench/model_zoo.py`` (about 6 minutes with transformers importable;
``--quick``: the zoo's own models, 2 rounds, about 4 minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ZOO = HERE / "zoo" / "zoo_models.py"
VARIANTS = [
    "torch",
    "torch-bf16",
    "torch-int8",
    "torch-compile",
    "onnxruntime",
    "onnxruntime-int8",
]
# model name -> (torch factory, input setting)
MODELS: dict[str, tuple[str, object]] = {
    "branchy": ("zoo_models:build_branchy", "zoo_models:inputs_branchy"),
    "kwblock": ("zoo_models:build_kwblock", "zoo_models:inputs_kwblock"),
    "tied": ("zoo_models:build_tied", {"shape": [1, 32]}),
    "convnet": ("zoo_models:build_convnet", {"shape": [1, 3, 112, 112]}),
    "lstm": ("zoo_models:build_lstm", {"shape": [1, 20, 32]}),
    "elementwise": ("zoo_models:build_elementwise", {"shape": [1, 64]}),
}
EXTERNAL = textwrap.dedent(
    """
    import torch


    def resnet18():
        from torchvision.models import resnet18

        torch.manual_seed(0)
        return resnet18(weights=None)


    def mobilenet():
        from torchvision.models import mobilenet_v3_small

        torch.manual_seed(0)
        return mobilenet_v3_small(weights=None)


    def bert():
        from transformers import BertConfig, BertModel

        torch.manual_seed(0)
        config = BertConfig(
            hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256
        )
        return BertModel(config)


    def bert_inputs(batch_size):
        generator = torch.Generator().manual_seed(batch_size)
        ids = torch.randint(0, 1000, (batch_size, 32), generator=generator)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    """
)


def external_models() -> dict[str, tuple[str, object]]:
    found: dict[str, tuple[str, object]] = {}
    try:
        import torchvision  # noqa: F401

        found["resnet18"] = ("external_models:resnet18", {"shape": [1, 3, 112, 112]})
        found["mobilenet"] = ("external_models:mobilenet", {"shape": [1, 3, 112, 112]})
    except Exception:  # not installed, or built for another torch
        print("torchvision: not importable here; resnet18 and mobilenet skipped")
    try:
        import transformers  # noqa: F401

        found["bert"] = ("external_models:bert", "external_models:bert_inputs")
    except Exception:
        print("transformers: not importable here; bert skipped")
    return found


def run_model(
    root: Path, name: str, factory: str, inputs: object, rounds: int
) -> tuple[dict[str, dict[str, object]], float]:
    """One model through ``perf-gate run``: each variant's outcome, and the run's wall time."""
    outcome: dict[str, dict[str, object]] = {}
    variants = list(VARIANTS)
    started = time.perf_counter()
    while variants:
        config = {
            "models": {
                name: {
                    "torch": factory,
                    "input": inputs,
                    "variants": variants,
                    "metrics": ["latency", "memory"],  # memory: the probe reads the size
                    "batch_sizes": [1],
                }
            },
            "measure": {"rounds": rounds, "min_time": "0.05s", "probes": 1},
        }
        (root / "perf-gate.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
        shutil.rmtree(root / ".perf-gate" / "work", ignore_errors=True)
        done = subprocess.run(
            [sys.executable, "-m", "gate", "run", "--out", "results.json"],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
            timeout=1200,
        )
        refused = re.search(r"variants: (\S+) would quantize nothing[^(]*", done.stderr)
        if done.returncode == 2 and refused and refused.group(1) in variants:
            outcome[refused.group(1)] = {"state": "refused", "reason": refused.group(0).strip()}
            variants.remove(refused.group(1))
            continue
        if done.returncode == 2 or not (root / "results.json").is_file():
            for variant in variants:
                outcome[variant] = {"state": "error", "reason": done.stderr.strip()[-300:]}
            break
        record = json.loads((root / "results.json").read_text(encoding="utf-8"))
        errors = {e["benchmark"]: e["message"] for e in record["errors"]}
        for variant in variants:
            benchmark = f"{name}[{variant}]"
            info = record["info"].get(benchmark, {})
            latency = next(
                (
                    s
                    for s in record["samples"]
                    if s["benchmark"] == benchmark and s["metric"] == "latency"
                ),
                None,
            )
            size = next(
                (
                    s["values"][0]
                    for s in record["samples"]
                    if s["benchmark"] == benchmark and s["metric"] == "model_size"
                ),
                None,
            )
            entry: dict[str, object] = {"state": "works" if latency else "error"}
            if benchmark in errors:
                entry = {"state": "error", "reason": errors[benchmark]}
            if latency:
                values = sorted(latency["values"])
                entry["latency"] = values[len(values) // 2]
                entry["first_calls"] = latency.get("first_calls", [])
            entry["size"] = size
            entry["parity"] = info.get("parity")
            entry["notes"] = info.get("notes", [])
            outcome[variant] = entry
        break
    return outcome, time.perf_counter() - started


def _time(seconds: object) -> str:
    if not isinstance(seconds, (int, float)):
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} us"


def _size(size: object) -> str:
    if not isinstance(size, (int, float)):
        return "-"
    return f"{size / 1e6:.3g} MB" if size >= 1e6 else f"{size / 1e3:.3g} kB"


def _parity(parity: object) -> str:
    if not isinstance(parity, dict):
        return "-"
    verdict = "ok" if parity.get("ok") else "FAIL"
    parts = [verdict]
    if parity.get("top1_agreement") is not None:
        parts.append(f"top-1 {parity['top1_agreement'] * 100:.0f}%")
    if parity.get("near_ties"):
        parts.append(f"{parity['near_ties']} ties")
    parts.append(f"max|d| {parity.get('max_abs_diff', 0):.2g}")
    return " ".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the zoo's own models, 2 rounds")
    args = parser.parse_args()
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    models = dict(MODELS)
    if not args.quick:
        models.update(external_models())
    rounds = 2 if args.quick else 3
    rows = []
    with tempfile.TemporaryDirectory(prefix="perf-gate-zoo-") as folder:
        for name, (factory, inputs) in models.items():
            root = Path(folder) / name
            root.mkdir()
            shutil.copy2(ZOO, root / "zoo_models.py")
            (root / "external_models.py").write_text(EXTERNAL, encoding="utf-8")
            print(f"{name}: measuring {len(VARIANTS)} variants...", file=sys.stderr, flush=True)
            outcome, wall = run_model(root, name, factory, inputs, rounds)
            for variant in VARIANTS:
                entry = outcome.get(variant, {"state": "-"})
                first = entry.get("first_calls") or []
                compile_text = (
                    f"{_time(first[0])} / {_time(sorted(first[1:])[len(first[1:]) // 2])}"
                    if variant == "torch-compile" and len(first) >= 2
                    else "-"
                )
                notes = "; ".join(str(n) for n in entry.get("notes") or [])
                reason = str(entry.get("reason") or notes)
                rows.append(
                    (
                        name,
                        variant,
                        str(entry["state"]),
                        _time(entry.get("latency")),
                        _size(entry.get("size")),
                        _parity(entry.get("parity")),
                        compile_text,
                        reason[:150],
                    )
                )
            rows.append((name, "(run)", f"{wall:.0f} s wall", "", "", "", "", ""))
    header = ("model", "variant", "state", "latency", "size", "parity", "compile 1st/later", "why")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
