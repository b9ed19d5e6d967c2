"""Run records <-> versioned JSON files (results.json, baselines/<name>.json). Never pickle.

Writes are atomic: a temporary file in the same directory, fsync, then rename, so a crash leaves
either the old file or the new one, never half of one.
"""

from __future__ import annotations

import binascii
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from gate.core import stats
from gate.core.types import (
    BenchmarkError,
    Direction,
    GitInfo,
    Metric,
    Replication,
    RunRecord,
    Sample,
)
from gate.errors import BaselineError
from gate.store import outcomes as examples
from gate.units import UNIT_BYTES, UNIT_FRACTION, UNIT_RATE, UNIT_SECONDS

# Format history:
#   1 (perf-gate 0.1, 2026-11): flat list of samples with per-process values, pooled calls,
#     first calls; environment fingerprint; git info; config digest. Quality samples
#     (replication "evaluation") may carry "examples": per-example outcomes, see
#     gate/store/outcomes.py (an optional key: older readers ignore it). Optional "files"
#     (md5 of the model and data files used) and "summary" (medians by benchmark and metric,
#     derived, for `dvc metrics`; never read back).
FORMAT = 1
SUPPORTED_FORMATS = (1,)
KIND = "perf-gate run record"
# Per-call values kept per sample; more are thinned evenly (percentiles barely move).
MAX_CALLS = 10_000
# A baseline keeps fewer per-call values, at 4 significant digits, so that 200 benchmarks load
# in well under 200 ms and stay under 2 MB (bench/baseline_io.py); they only feed p90/p99.
BASELINE_CALLS = 500
BASELINE_CALL_DIGITS = 4
# How to get a good record, for every message about a bad one (from `perf-gate compare` too).
RECORD_FIX = "record a new one with `perf-gate run --save` or `pytest --perf-gate --perf-gate-save`"
# Units whose values cannot be negative: times, sizes, rates and fractions.
NON_NEGATIVE_UNITS = frozenset({UNIT_SECONDS, UNIT_BYTES, UNIT_RATE, UNIT_FRACTION})


def _significant(values: list[float], digits: int | None) -> list[float]:
    if digits is None:
        return values
    return [
        round(v, digits - 1 - math.floor(math.log10(abs(v)))) if v and math.isfinite(v) else v
        for v in values
    ]


def summary(record: RunRecord) -> dict[str, dict[str, float]]:
    """Medians by benchmark and metric: the flat view that ``dvc metrics show/diff`` reads."""
    result: dict[str, dict[str, float]] = {}
    for sample in record.samples:
        result.setdefault(sample.benchmark, {})[sample.metric.name] = stats.median(sample.values)
    return result


def record_to_dict(
    record: RunRecord, *, max_calls: int = MAX_CALLS, call_digits: int | None = None
) -> dict[str, Any]:
    """The JSON-ready form of a run record (format ``FORMAT``); per-call values are thinned to
    ``max_calls`` per sample and rounded to ``call_digits`` significant digits when given."""
    return {
        "format": FORMAT,
        "kind": KIND,
        "created": record.created,
        "tool_version": record.tool_version,
        "git": {"commit": record.git.commit, "ref": record.git.ref, "dirty": record.git.dirty},
        "environment": dict(record.environment),
        "config_digest": record.config_digest,
        "settings": dict(record.settings),
        "info": {name: dict(values) for name, values in record.info.items()},
        "errors": [{"benchmark": e.benchmark, "message": e.message} for e in record.errors],
        "files": dict(record.files),
        "summary": summary(record),
        "samples": [
            {
                "benchmark": s.benchmark,
                "metric": s.metric.name,
                "unit": s.metric.unit,
                "direction": s.metric.direction.value,
                "replication": s.replication.value,
                "values": list(s.values),
                "calls": _significant(stats.thin(s.calls, max_calls), call_digits),
                "first_calls": list(s.first_calls),
                **({"examples": examples.encode(s.examples)} if s.examples else {}),
            }
            for s in record.samples
        ],
    }


class _Reader:
    """Validates a parsed record; every error names the file and the key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, message: str) -> BaselineError:
        return BaselineError(
            f"{self.path}: {key}: {message}; the file is damaged: restore it "
            f"(git checkout / dvc checkout) or {RECORD_FIX}",
            slug="baseline-corrupt",
        )

    def not_a_record(self, what: str) -> BaselineError:
        return BaselineError(
            f"{self.path}: not a perf-gate run record ({what}); pass a run record "
            "(.perf-gate/results.json, or a baseline under baselines/)",
            slug="baseline-format",
        )

    def numbers(
        self, value: Any, key: str, *, required: bool, non_negative: bool = False
    ) -> tuple[float, ...]:
        if not isinstance(value, list) or (required and not value):
            raise self.fail(key, "expected a non-empty list of numbers")
        result = []
        for item in value:
            if isinstance(item, bool) or not isinstance(item, (int, float)):
                raise self.fail(key, f"expected numbers, found {item!r}")
            try:
                number = float(item)
            except OverflowError:
                raise self.fail(key, "found a number too large for a float") from None
            if not math.isfinite(number):
                raise self.fail(key, f"expected finite numbers, found {item!r}")
            if non_negative and number < 0:
                raise self.fail(key, f"found {item!r}; times, sizes and rates cannot be negative")
            result.append(number)
        return tuple(result)

    def sample(self, raw: Any, index: int) -> Sample:
        key = f"samples[{index}]"
        if not isinstance(raw, dict):
            raise self.fail(key, "expected an object")
        for name in ("benchmark", "metric", "unit", "direction"):
            if not isinstance(raw.get(name), str):
                raise self.fail(f"{key}.{name}", "expected a string")
        try:
            direction = Direction(raw["direction"])
            replication = Replication(raw.get("replication", "process"))
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None
        positive = raw["unit"] in NON_NEGATIVE_UNITS
        return Sample(
            benchmark=raw["benchmark"],
            metric=Metric(raw["metric"], raw["unit"], direction),
            values=self.numbers(
                raw.get("values"), f"{key}.values", required=True, non_negative=positive
            ),
            replication=replication,
            calls=self.numbers(
                raw.get("calls", []), f"{key}.calls", required=False, non_negative=positive
            ),
            first_calls=self.numbers(
                raw.get("first_calls", []),
                f"{key}.first_calls",
                required=False,
                non_negative=positive,
            ),
            examples=self.examples(raw.get("examples"), f"{key}.examples"),
        )

    def examples(self, raw: Any, key: str) -> tuple[float, ...]:
        if raw is None:
            return ()
        try:
            return examples.decode(raw)
        except (ValueError, binascii.Error) as exc:
            raise self.fail(key, f"unreadable per-example outcomes ({exc})") from None

    def samples(self, raw: list[Any]) -> tuple[Sample, ...]:
        """Every sample, each (benchmark, metric) once: a second one would be compared silently
        in place of the first."""
        samples: list[Sample] = []
        seen: dict[tuple[str, str], int] = {}
        for index, item in enumerate(raw):
            sample = self.sample(item, index)
            key = (sample.benchmark, sample.metric.name)
            if key in seen:
                raise self.fail(
                    f"samples[{index}]",
                    f"a second sample of {sample.benchmark} {sample.metric.name} (the first is "
                    f"samples[{seen[key]}]); a record holds one sample per benchmark and metric",
                )
            seen[key] = index
            samples.append(sample)
        return tuple(samples)

    def record(self, data: Any) -> RunRecord:
        if not isinstance(data, dict):
            raise self.fail("top level", "expected a JSON object")
        if "comparisons" in data and "samples" not in data:
            raise self.not_a_record("it looks like a comparison.json, the report of a run")
        kind = data.get("kind")
        if isinstance(kind, str) and kind != KIND:
            raise self.not_a_record(f"its kind is {kind!r}")
        if "format" not in data:
            raise self.not_a_record("no 'format' key")
        version = data["format"]
        if isinstance(version, bool) or version not in SUPPORTED_FORMATS:
            supported = ", ".join(str(v) for v in SUPPORTED_FORMATS)
            raise BaselineError(
                f"{self.path}: format {version!r} is not supported (this perf-gate reads "
                f"{supported}); upgrade perf-gate or {RECORD_FIX}",
                slug="baseline-format",
            )
        samples = data.get("samples")
        if not isinstance(samples, list):
            raise self.fail("samples", "expected a list")
        git = data.get("git") or {}
        errors = data.get("errors") or []
        info = data.get("info") or {}
        environment = data.get("environment") or {}
        settings = data.get("settings") or {}
        files = data.get("files") or {}
        for key, value, kind in (
            ("files", files, dict),
            ("git", git, dict),
            ("errors", errors, list),
            ("info", info, dict),
            ("environment", environment, dict),
            ("settings", settings, dict),
        ):
            if not isinstance(value, kind):
                raise self.fail(key, f"expected a JSON {'object' if kind is dict else 'array'}")
        for name, value in info.items():
            if not isinstance(value, dict):
                raise self.fail(f"info.{name}", "expected a JSON object")
        for name, value in files.items():
            if not isinstance(value, str):
                raise self.fail(f"files.{name}", "expected a hash string")
        return RunRecord(
            samples=self.samples(samples),
            environment=environment,
            git=GitInfo(commit=git.get("commit"), ref=git.get("ref"), dirty=git.get("dirty")),
            created=str(data.get("created", "")),
            tool_version=str(data.get("tool_version", "")),
            config_digest=str(data.get("config_digest", "")),
            settings=settings,
            info=info,
            errors=tuple(
                BenchmarkError(benchmark=str(e.get("benchmark")), message=str(e.get("message")))
                for e in errors
                if isinstance(e, dict)
            ),
            files=files,
        )


def _dangling_link(path: Path) -> BaselineError:
    """A symlink whose target is gone: DVC's symlink cache after the cache was cleared."""
    return BaselineError(
        f"{path}: a symlink to {os.readlink(path)}, which does not exist (a DVC cache file that "
        "is gone?); restore it with `perf-gate baseline pull` (or `dvc pull`)",
        slug="baseline-missing",
    )


def _looks_like_yaml(path: Path, text: str) -> bool:
    if path.suffix in (".yaml", ".yml"):
        return True
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return bool(lines) and re.match(r"[A-Za-z_][\w.-]*\s*:(\s|$)", lines[0]) is not None


def read_record(path: Path) -> RunRecord:
    """Read and validate a run record. Raises BaselineError (missing, corrupt, unsupported)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if os.path.lexists(path):
            raise _dangling_link(path) from None
        raise BaselineError(
            f"{path}: file not found; check the path (a run writes .perf-gate/results.json; "
            "`perf-gate run --save` or `pytest --perf-gate --perf-gate-save` records a baseline)",
            slug="baseline-missing",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"{path}: cannot read: {exc}", slug="baseline-corrupt") from exc
    reader = _Reader(path)
    if not text.strip():
        raise reader.fail("content", "the file is empty")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if _looks_like_yaml(path, text):
            raise reader.not_a_record("it looks like YAML, e.g. a perf-gate.yaml") from None
        raise reader.fail(
            f"line {exc.lineno}, column {exc.colno}", f"not valid JSON ({exc.msg})"
        ) from None
    except RecursionError:  # json's C decoder recurses per nesting level
        raise reader.fail("content", "JSON nested too deeply to be a run record") from None
    return reader.record(data)


def read_baseline(path: Path) -> RunRecord | None:
    """The baseline at ``path``, or None when there is none yet. Damaged files still raise, and
    so does a symlink whose target is gone (it is a baseline that cannot be read, not none)."""
    if not path.exists():
        if os.path.lexists(path):
            raise _dangling_link(path)
        return None
    return read_record(path)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically (temp file, fsync, rename)."""
    text = json.dumps(data, indent=1, sort_keys=False, allow_nan=False)
    write_bytes_atomic(path, (text + "\n").encode("utf-8"))


def write_bytes_atomic(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` atomically: temp file in the same folder, fsync, rename,
    fsync of the folder; a crash leaves the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        mode = 0o644  # mkstemp's 0600 would hide a new baseline from other users
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            os.fchmod(stream.fileno(), mode)
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    try:
        directory = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def write_record(path: Path, record: RunRecord) -> None:
    """Write a run record atomically. Raises BaselineError when the file cannot be written."""
    try:
        write_json_atomic(path, record_to_dict(record))
    except OSError as exc:
        raise BaselineError(f"{path}: cannot write: {exc}", slug="baseline-write") from exc


def write_baseline(path: Path, record: RunRecord) -> None:
    """Write a record in its baseline form, atomically. Raises BaselineError when it cannot."""
    try:
        write_bytes_atomic(path, baseline_bytes(record))
    except OSError as exc:
        raise BaselineError(f"{path}: cannot write: {exc}", slug="baseline-write") from exc


def baseline_bytes(record: RunRecord) -> bytes:
    """A record in its baseline form: compact JSON, per-call values bounded and rounded."""
    data = record_to_dict(record, max_calls=BASELINE_CALLS, call_digits=BASELINE_CALL_DIGITS)
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return (text + "\n").encode("utf-8")
