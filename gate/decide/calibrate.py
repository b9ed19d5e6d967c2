"""``perf-gate calibrate``: A/A rounds that measure what this runner can resolve.

The head is paired against itself (``ab`` rounds from the same tree, ``duet`` for onnxruntime
variants), so every difference is noise. For each timing comparison the spread of the per-round
log ratios gives the rounds needed to detect each threshold with 80% power. The result is kept
per environment key beside the baseline (``<baseline>.calibration.json``) and the gate warns when
a threshold is below what ``max_rounds`` rounds can resolve on this runner.
"""

from __future__ import annotations

import json
import math
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.config import GateConfig
from gate.core import stats
from gate.decide.compare import TIMING_FAMILIES
from gate.errors import BaselineError, ConfigError
from gate.measure import ONNX_VARIANTS
from gate.measure.environment import environment_key, fingerprint
from gate.measure.paired import PairedRounds, PairedRunner
from gate.measure.runner import Progress, Runner, prepare_all
from gate.measure.samples import round_samples
from gate.store.records import write_json_atomic

THRESHOLDS = (0.01, 0.02, 0.05, 0.10)
POWER = 0.8
FORMAT = 1


def calibration_path(baseline: Path) -> Path:
    return baseline.with_name(baseline.stem + ".calibration.json")


def rounds_needed(sd: float, threshold: float, alpha: float, limit: int = 1000) -> int | None:
    """Smallest n with (t_{1-alpha} + t_{power}) * sd / sqrt(n) <= log(1 + threshold)."""
    target = math.log1p(threshold)
    if sd == 0.0:
        return 2
    for n in range(2, limit + 1):
        if stats.minimum_detectable_effect(sd / math.sqrt(n), n - 1, alpha, POWER) <= target:
            return n
    return None


@dataclass(frozen=True)
class Spread:
    benchmark: str
    metric: str
    mode: str
    sd: float  # of per-round log ratios
    rounds: int


def measure_spread(config: GateConfig, rounds: int, progress: Progress) -> list[Spread]:
    """A/A paired rounds of every model variant; the per-round log-ratio spread of each timing."""
    runner = Runner(config.measure, config.root, config.report_dir / "work", progress)
    try:
        plans, errors, _ = prepare_all(config, None, progress, runner)
    except BaseException:
        runner.close()
        raise
    if errors:
        runner.close()
        raise ConfigError(
            "calibration needs every benchmark to prepare: "
            + "; ".join(f"{e.benchmark}: {e.message}" for e in errors)
        )
    if not plans:
        runner.close()
        raise ConfigError(f"{config.label}: no models to calibrate; add a 'models:' section")
    pairs = [(plan, plan) for plan in plans]
    into = PairedRounds()
    with closing(runner):  # its preloaded interpreters stop with the calibration
        PairedRunner(
            runner,
            config.root,
            parallel=config.policy.parallel != "never",
            pinned=config.policy.parallel == "pinned",
        ).run(
            [p for p in pairs if p[1].variant not in ONNX_VARIANTS],
            [p for p in pairs if p[1].variant in ONNX_VARIANTS],
            rounds,
            into,
        )
    spreads: list[Spread] = []
    for plan in plans:
        n = into.rounds_of(plan.name)
        if plan.name in into.errors or n < 2:
            continue
        heads = round_samples(plan, into.head[plan.name][:n])
        bases = round_samples(plan, into.base[plan.name][:n])
        for head, base in zip(heads, bases, strict=True):
            if head.metric.family not in TIMING_FAMILIES:
                continue
            ratios = [math.log(h / b) for h, b in zip(head.values, base.values, strict=True)]
            spreads.append(
                Spread(
                    plan.name,
                    head.metric.name,
                    into.modes[plan.name],
                    math.sqrt(stats.variance(ratios)),
                    n,
                )
            )
    return spreads


def render(spreads: list[Spread], alpha: float, max_rounds: int) -> str:
    header = ["benchmark", "metric", "mode", "sd/round"] + [f"n@{t:.0%}" for t in THRESHOLDS]
    rows = []
    for s in spreads:
        needed = [rounds_needed(s.sd, t, alpha) for t in THRESHOLDS]
        rows.append(
            [s.benchmark, s.metric, s.mode, f"{s.sd:.2%}"]
            + [
                ("-" if n is None else str(n)) + ("!" if n is None or n > max_rounds else "")
                for n in needed
            ]
        )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    lines.append(
        f"n@T = paired rounds needed to detect a change of T with {POWER:.0%} power at "
        f"alpha={alpha:g} (one comparison); '!' = more than max_rounds ({max_rounds})."
    )
    return "\n".join(lines)


def save(config: GateConfig, spreads: list[Spread], baseline: Path) -> Path:
    """Record the spreads under this machine's environment key, keeping other keys."""
    path = calibration_path(baseline)
    data: dict[str, Any] = {"format": FORMAT, "environments": {}}
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BaselineError(f"{path}: cannot read the calibration: {exc}") from exc
    key = environment_key(fingerprint(config.measure.threads))
    data.setdefault("environments", {})[key] = {
        f"{s.benchmark} {s.metric}": {"mode": s.mode, "sd": s.sd, "rounds": s.rounds}
        for s in spreads
    }
    write_json_atomic(path, data)
    return path


def unresolvable(config: GateConfig, baseline: Path, key: str) -> list[str]:
    """Warnings for thresholds below what ``max_rounds`` paired rounds resolve on this runner."""
    path = calibration_path(baseline)
    if not path.exists():
        return []
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))["environments"].get(key, {})
    except (OSError, ValueError, KeyError, AttributeError):
        return [f"{path}: unreadable calibration file; run `perf-gate calibrate` again"]
    warnings = []
    policy = config.policy
    for name, entry in entries.items():
        benchmark, _, metric = name.rpartition(" ")
        family = metric.split("@", 1)[0].split(".", 1)[0]
        threshold = policy.threshold_for(benchmark, family)
        if not threshold.relative:
            continue
        needed = rounds_needed(float(entry["sd"]), threshold.value, policy.alpha)
        if needed is None or needed > policy.max_rounds:
            warnings.append(
                f"{benchmark} {metric}: a {threshold.describe()} threshold needs "
                f"{needed or 'over 1000'} paired rounds on this runner (max_rounds "
                f"{policy.max_rounds}); raise the threshold or max_rounds"
            )
    return warnings
