"""``perf-gate run --shard i/n``: one deterministic part of the config's benchmarks per matrix job.

Shards split *models*, never the variants of one model: a model's variants are evaluated in one
worker (parity needs the reference variant's outputs there) and share one ONNX export. Models
are dealt largest first (by variant count, then by name) to the shard with the fewest variants
so far, so every job computes the same split from the config alone, with no coordination.

A shard is one part of one run, so it is tested at ``alpha / n`` (Bonferroni across shards):
the merged run's false-alarm rate stays at the configured ``alpha``, as for an unsharded run.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from gate.config import GateConfig
from gate.core.types import RunRecord
from gate.errors import BaselineError, ConfigError
from gate.store.merge import comparison_beside
from gate.store.records import MAX_SHARDS, write_record

_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @classmethod
    def parse(cls, text: str, *, save: bool = False) -> Shard:
        """``"2/3"`` -> Shard(2, 3). Raises ConfigError for anything else, and with ``save``:
        a shard is part of a run and never a baseline by itself."""
        if save:
            raise ConfigError(
                "--shard with --save: a shard is only part of a run; merge the shards with "
                "`perf-gate merge` and promote the merged record on the default branch",
                slug="shard",
            )
        shown = text if len(text) <= 40 else text[:37] + "..."
        match = _SPEC.match(text)
        if match is None:
            raise ConfigError(
                f"--shard {shown!r}: expected I/N with 1 <= I <= N, e.g. --shard 2/3",
                slug="shard",
            )
        # Digits beyond the bound's are out of range whatever they say (and never converted:
        # a number of thousands of digits is refused by int()).
        width = len(str(MAX_SHARDS))
        index_digits, count_digits = (match[n].lstrip("0") or "0" for n in (1, 2))
        if count_digits == "0":
            raise ConfigError(
                f"--shard {shown!r}: expected I/N with 1 <= I <= N, e.g. --shard 2/3", slug="shard"
            )
        if len(count_digits) > width or int(count_digits) > MAX_SHARDS:
            raise ConfigError(
                f"--shard {shown!r}: at most {MAX_SHARDS} shards (each is a matrix job with at "
                f"least one model); use --shard I/N with N <= {MAX_SHARDS}",
                slug="shard",
            )
        count = int(count_digits)
        if len(index_digits) > width or not 1 <= int(index_digits) <= count:
            raise ConfigError(
                f"--shard {shown!r}: the shard number must be between 1 and {count}", slug="shard"
            )
        index = int(index_digits)
        return cls(index, count)

    def to_dict(self) -> dict[str, int]:
        return {"index": self.index, "count": self.count}


def assign(config: GateConfig, count: int) -> list[list[str]]:
    """The models of each of ``count`` shards (index 0 is shard 1); deterministic."""
    shards: list[list[str]] = [[] for _ in range(count)]
    loads = [0] * count
    for model in sorted(config.models, key=lambda m: (-len(m.variants), m.name)):
        target = min(range(count), key=lambda i: (loads[i], i))
        shards[target].append(model.name)
        loads[target] += len(model.plan_variants)
    return shards


def select(config: GateConfig, shard: Shard, selected: set[str] | None = None) -> set[str]:
    """The benchmark names this shard measures (within ``selected`` when given).

    Raises ConfigError when the shard would be empty: more shards than models.
    """
    models = set(assign(config, shard.count)[shard.index - 1])
    names = {
        name
        for model in config.models
        if model.name in models
        for name in model.benchmark_names()
        if selected is None or name in selected
    }
    if not models:
        where = config.path or "the config"
        raise ConfigError(
            f"--shard {shard}: {where} has {len(config.models)} model(s), and shards split "
            f"models (a model's variants stay together); use --shard I/N with N <= "
            f"{len(config.models)}",
            slug="shard",
        )
    return names


def shard_config(config: GateConfig, shard: Shard) -> GateConfig:
    """The config a shard runs with: ``alpha / n`` so that the whole run keeps ``alpha``."""
    policy = replace(config.policy, alpha=config.policy.alpha / shard.count)
    return replace(config, policy=policy)


def mark(path: Path, record: RunRecord, shard: Shard, comparison: Path) -> None:
    """Record which shard ``path`` holds (``settings.shard``), so that ``perf-gate merge``
    can tell a missing or repeated shard, and keep the shard's report beside it
    (``results-2.json`` -> ``comparison-2.json``) where merge looks for it.

    Raises BaselineError when a file cannot be written.
    """
    write_record(path, replace(record, settings={**record.settings, "shard": shard.to_dict()}))
    beside = comparison_beside(path)
    if beside is not None and beside.resolve() != comparison.resolve():
        try:
            shutil.copyfile(comparison, beside)
        except OSError as exc:
            raise BaselineError(f"{beside}: cannot write: {exc}", slug="baseline-write") from exc
