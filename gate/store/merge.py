"""``perf-gate merge``: the run records (and reports) of matrix jobs -> one record, one report.

Each matrix job measured part of the benchmarks (``--shard i/n``) or the same benchmarks on
another kind of runner (a CPU and a GPU job), and decided its part against the baseline of its
own environment, paired where it could be. Merging therefore joins *decisions*, it does not
re-decide: the comparisons beside each record (``results-2.json`` -> ``comparison-2.json``,
``results.json`` -> ``comparison.json``) are concatenated, grouped by environment.

Shards are refused, by name, when they come from different commits or configs (they would not
describe one change), when a benchmark is measured twice in one environment, or when a shard
of ``n`` is missing. With more than one environment every benchmark name is qualified
(``digits-mlp[torch] · NVIDIA A10G``), so names never collide and the report groups by it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gate.config import GateConfig, load_config
from gate.core.environment_fields import environment_label
from gate.core.types import BenchmarkError, GitInfo, RunRecord, Sample, Verdict
from gate.errors import BaselineError, ConfigError
from gate.store.baseline_store import refuse_baseline_target
from gate.store.records import read_limited, read_record, write_json_atomic, write_record

SHARD_KEY = "shard"


@dataclass(frozen=True)
class Part:
    """One input: a run record and, when its job wrote one, the report beside it."""

    path: Path
    record: RunRecord
    comparison: Mapping[str, Any] | None = None
    comparison_path: Path | None = None

    @property
    def key(self) -> str:
        key = self.record.environment.get("key")
        return key if isinstance(key, str) and key else "unknown"

    @property
    def shard(self) -> tuple[int, int] | None:
        value = self.record.settings.get(SHARD_KEY)
        if isinstance(value, Mapping):
            index, count = value.get("index"), value.get("count")
            if isinstance(index, int) and isinstance(count, int):
                return index, count
        return None


@dataclass(frozen=True)
class Merged:
    """The merged record, the merged report (None when the inputs had none) and what went in."""

    record: RunRecord
    comparison: dict[str, Any] | None
    parts: tuple[Part, ...]
    labels: Mapping[str, str] = field(default_factory=dict)  # environment key -> label


def comparison_beside(results: Path) -> Path | None:
    """``results-2.json`` -> ``comparison-2.json``; None for names not starting ``results``."""
    if not results.name.startswith("results"):
        return None
    return results.with_name("comparison" + results.name.removeprefix("results"))


def _read_comparison(path: Path) -> Mapping[str, Any]:
    fix = "keep the comparison.json the shard's `perf-gate run` wrote beside its results"
    try:
        data = json.loads(read_limited(path, fix=fix, slug="comparison-file"))
    except (OSError, ValueError) as exc:
        raise BaselineError(
            f"{path}: cannot read the shard's report: {exc}", slug="comparison-file"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("comparisons"), list):
        raise BaselineError(
            f"{path}: not a comparison report (no 'comparisons' list); keep the comparison.json "
            "the shard's `perf-gate run` wrote beside its results",
            slug="comparison-file",
        )
    return data


def read_parts(paths: Sequence[Path]) -> list[Part]:
    """Each record with the report beside it, if any. Raises BaselineError for unreadable files."""
    if not paths:
        raise ConfigError("perf-gate merge: name the shards' results files", slug="merge")
    parts = []
    for path in paths:
        record = read_record(path)
        beside = comparison_beside(path)
        if beside is not None and beside.is_file():
            parts.append(Part(path, record, _read_comparison(beside), beside))
        else:
            parts.append(Part(path, record))
    return parts


def _refuse_mixed(parts: Sequence[Part], what: str, value: Any, fix: str) -> None:
    """Raise naming every file when ``value(part)`` is not the same for all parts."""
    groups: dict[str, list[str]] = {}
    for part in parts:
        groups.setdefault(str(value(part) or "unknown"), []).append(str(part.path))
    if len(groups) > 1:
        listed = "; ".join(f"{', '.join(files)}: {name[:12]}" for name, files in groups.items())
        raise ConfigError(
            f"perf-gate merge: the shards come from different {what} ({listed}); {fix}",
            slug="merge",
        )


def _check_shards(key: str, parts: Sequence[Part]) -> None:
    """Within one environment: complete ``i/n`` sets, nothing measured twice."""
    numbered = [(p, p.shard) for p in parts if p.shard is not None]
    if numbered:
        counts = {shard[1] for _, shard in numbered}
        if len(counts) > 1 or len(numbered) != len(parts):
            listed = ", ".join(f"{p.path} ({_shard_text(p)})" for p in parts)
            raise ConfigError(
                f"perf-gate merge: environment {key}: the shards were split differently "
                f"({listed}); run every job with the same --shard I/N count",
                slug="merge",
            )
        count = counts.pop()
        seen: dict[int, Path] = {}
        for part, (index, _) in numbered:
            if index in seen:
                raise ConfigError(
                    f"perf-gate merge: environment {key}: shard {index}/{count} is in both "
                    f"{seen[index]} and {part.path}; pass each shard once",
                    slug="merge",
                )
            seen[index] = part.path
        missing = [f"{i}/{count}" for i in range(1, count + 1) if i not in seen]
        if missing:
            raise ConfigError(
                f"perf-gate merge: environment {key}: shard(s) {', '.join(missing)} missing "
                f"(have {', '.join(str(p) for p in seen.values())}); a merged report must "
                "cover every shard",
                slug="merge",
            )
    owner: dict[tuple[str, str], Path] = {}
    for part in parts:
        for sample in part.record.samples:
            name = (sample.benchmark, sample.metric.name)
            if name in owner and owner[name] != part.path:
                raise ConfigError(
                    f"perf-gate merge: environment {key}: {sample.benchmark} "
                    f"{sample.metric.name} was measured in both {owner[name]} and {part.path}; "
                    "shards must not overlap",
                    slug="merge",
                )
            owner[name] = part.path


def _shard_text(part: Part) -> str:
    return f"{part.shard[0]}/{part.shard[1]}" if part.shard else "not a shard"


def label_environments(parts: Iterable[Part]) -> dict[str, str]:
    """A readable, unique label per environment key: the GPU, else the CPU model."""
    fingerprints: dict[str, Mapping[str, Any]] = {}
    for part in parts:
        fingerprints.setdefault(part.key, part.record.environment)
    labels = {
        key: str(env.get("gpu") or env.get("cpu_model") or key).strip() or key
        for key, env in fingerprints.items()
    }
    repeated = {label for label in labels.values() if list(labels.values()).count(label) > 1}
    return {
        key: f"{label} ({key[:8]})" if label in repeated else label for key, label in labels.items()
    }


def qualified(name: str, label: str | None) -> str:
    """A benchmark name with its environment (only when a merge spans several)."""
    return f"{name} · {label}" if label else name


def merge(paths: Sequence[Path]) -> Merged:
    """Merge the results files at ``paths``.

    Raises ConfigError for shards that do not belong together (naming them), BaselineError
    for files that cannot be read.
    """
    parts = read_parts(paths)
    _refuse_mixed(
        parts,
        "commits",
        lambda p: p.record.git.commit,
        "merge only the jobs of one workflow run (one commit)",
    )
    _refuse_mixed(
        parts,
        "configs",
        lambda p: p.record.config_digest,
        "every job must run with the same perf-gate config",
    )
    with_report = [p for p in parts if p.comparison is not None]
    if with_report and len(with_report) != len(parts):
        lacking = ", ".join(str(p.path) for p in parts if p.comparison is None)
        raise ConfigError(
            f"perf-gate merge: no comparison report beside {lacking}; keep each job's "
            "comparison.json next to its results (results-N.json -> comparison-N.json)",
            slug="merge",
        )
    groups: dict[str, list[Part]] = {}
    for part in parts:
        groups.setdefault(part.key, []).append(part)
    for key, members in groups.items():
        _check_shards(key, members)
    labels = label_environments(parts) if len(groups) > 1 else {}
    record = _merged_record(parts, groups, labels)
    comparison = _merged_comparison(groups, labels, record) if with_report else None
    return Merged(record=record, comparison=comparison, parts=tuple(parts), labels=labels)


def _merged_record(
    parts: Sequence[Part], groups: Mapping[str, Sequence[Part]], labels: Mapping[str, str]
) -> RunRecord:
    samples: list[Sample] = []
    info: dict[str, Mapping[str, Any]] = {}
    errors: list[BenchmarkError] = []
    files: dict[str, str] = {}
    for part in parts:
        label = labels.get(part.key)
        samples += [
            replace(s, benchmark=qualified(s.benchmark, label)) for s in part.record.samples
        ]
        for name, values in part.record.info.items():
            info[qualified(name, label)] = values
        errors += [replace(e, benchmark=qualified(e.benchmark, label)) for e in part.record.errors]
        for name, digest in part.record.files.items():
            files.setdefault(name, digest)
    first = parts[0].record
    if len(groups) == 1:
        environment: Mapping[str, Any] = first.environment
    else:  # one fingerprint per environment; such a record is a report, never a baseline
        environment = {
            "environments": {
                labels[key]: dict(members[0].record.environment) for key, members in groups.items()
            }
        }
    settings = {k: v for k, v in first.settings.items() if k != SHARD_KEY}
    settings["merged"] = {
        "files": [str(p.path) for p in parts],
        "environments": len(groups),
    }
    return RunRecord(
        samples=tuple(samples),
        environment=environment,
        git=GitInfo(
            commit=first.git.commit,
            ref=first.git.ref,
            dirty=any(bool(p.record.git.dirty) for p in parts),
        ),
        created=max(p.record.created for p in parts),
        tool_version=first.tool_version,
        config_digest=first.config_digest,
        settings=settings,
        info=info,
        errors=tuple(errors),
        files=files,
    )


def _exit_code(codes: Iterable[int]) -> int:
    """Regression (1) wins, then any other failure (the largest code), else 0."""
    codes = list(codes)
    if 1 in codes:
        return 1
    return max(codes, default=0)


def _prefixed(label: str | None, text: str) -> str:
    return f"{label}: {text}" if label else text


def _mark(item: Any, label: str | None) -> Any:
    """A report entry with its benchmark qualified and, across environments, its label (the
    report groups rows by it)."""
    if not isinstance(item, Mapping):
        return item
    named = {**item, "benchmark": qualified(str(item.get("benchmark", "")), label)}
    return {**named, "environment": label} if label else named


def _merged_comparison(
    groups: Mapping[str, Sequence[Part]], labels: Mapping[str, str], record: RunRecord
) -> dict[str, Any]:
    comparisons: list[dict[str, Any]] = []
    texts: dict[str, list[str]] = {"notes": [], "warnings": []}
    errors: list[dict[str, Any]] = []
    variants: list[dict[str, Any]] = []
    tails: list[dict[str, Any]] = []
    differences: dict[str, Any] = {}
    baseline_commits: set[str | None] = set()
    alphas: list[float] = []
    codes: list[int] = []
    has_baseline = False
    for key, members in groups.items():
        label = labels.get(key)
        shard_alphas: list[float] = []
        for part in members:
            data = part.comparison or {}
            codes.append(int(data.get("exit_code", 3)))
            has_baseline = has_baseline or bool(data.get("has_baseline"))
            shard_alphas.append(float(data.get("alpha") or 0.0))
            baseline_commits.add(data.get("baseline_commit"))
            comparisons += [_mark(c, label) for c in data.get("comparisons") or ()]
            errors += [_mark(e, label) for e in data.get("errors") or ()]
            variants += [_mark(v, label) for v in data.get("variants") or ()]
            tails += [_mark(t, label) for t in data.get("tail_latency") or ()]
            for name in texts:
                for text in data.get(name) or ():
                    line = _prefixed(label, str(text))
                    if line not in texts[name]:
                        texts[name].append(line)
            for name, pair in (data.get("environment_differences") or {}).items():
                differences[_prefixed(label, str(name))] = pair
        # Shards of one run were each tested at alpha / n: together, alpha.
        numbered = all(p.shard is not None for p in members)
        alphas.append(sum(shard_alphas) if numbered else max(shard_alphas))
    shards = sum(len(m) for m in groups.values())
    if shards > 1:
        where = f" in {len(groups)} environments ({', '.join(labels.values())})" if labels else ""
        texts["notes"].append(
            f"Merged from {shards} jobs{where}; each decided its part against its own "
            "environment's baseline, shards of one environment at alpha / n each."
        )
    counts = {v.value: 0 for v in Verdict}
    for item in comparisons:
        verdict = str(item.get("verdict"))
        counts[verdict] = counts.get(verdict, 0) + 1
    exit_code = _exit_code(codes)
    environment_key = record.environment.get("key")
    return {
        "format": 1,
        "exit_code": exit_code,
        "passed": exit_code == 0,
        "has_baseline": has_baseline,
        "alpha": max(alphas),
        "counts": counts,
        "baseline_commit": baseline_commits.pop() if len(baseline_commits) == 1 else None,
        "current_commit": record.git.commit,
        "environment_key": environment_key if isinstance(environment_key, str) else None,
        "environment_label": environment_label(record.environment) or None,
        "environment_differences": differences,
        "warnings": texts["warnings"],
        "notes": texts["notes"],
        "errors": errors,
        "comparisons": comparisons,
        "variants": variants,
        "tail_latency": tails,
    }


def write(merged: Merged, out: Path, config: GateConfig | None = None) -> list[Path]:
    """Write the record to ``out`` and the report beside it; returns the files written.

    Raises BaselineError when a file cannot be written, or when ``out`` or the report's path is
    in the baselines store of ``config`` (default: the one found in the current directory):
    a merged record is never a baseline by accident; ``run --save`` and ``promote`` write those.
    """
    baseline, root, report_dir = _store_of(config)
    target = comparison_beside(out) or out.with_name("comparison.json")
    for path in (out, target) if merged.comparison is not None else (out,):
        refuse_baseline_target(path, "-o", baselines=[baseline], root=root, report_dir=report_dir)
    write_record(out, merged.record)
    written = [out]
    if merged.comparison is not None:
        try:
            write_json_atomic(target, merged.comparison)
        except OSError as exc:
            raise BaselineError(f"{target}: cannot write: {exc}", slug="baseline-write") from exc
        written.append(target)
    return written


def _store_of(config: GateConfig | None) -> tuple[Path, Path, Path]:
    """(baseline, root, report folder) of ``config``, else of the current directory's config,
    else perf-gate's defaults there: merge reads no other setting, so a config it cannot read
    does not stop it."""
    if config is None:
        try:
            config = load_config()
        except ConfigError:
            here = Path.cwd()
            return here / "baselines" / "main.json", here, here / ".perf-gate"
    return config.baseline, config.root, config.report_dir
