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
import stat
import tempfile
from pathlib import Path
from typing import IO, Any

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
# The most shards a run is split into (`run --shard I/N`, a record's settings.shard).
MAX_SHARDS = 1000
# The largest plausible value per unit: about 11.6 days per call, an exabyte, 10^15 items per
# second, a whole fraction; any other unit (custom metrics) 10^30 either way. Beyond them a
# value is damage, and the statistics on values within them (sums of squares of spreads, ratios
# of means) stay far from a float's range.
PLAUSIBLE = {UNIT_SECONDS: 1e6, UNIT_BYTES: 1e18, UNIT_RATE: 1e15, UNIT_FRACTION: 1.0}
PLAUSIBLE_OTHER = 1e30
# The most perf-gate reads from one record, history or report: a 200-benchmark baseline is
# 1.4 MB and a results.json with 10,000 calls per latency sample 55 MB (bench/baseline_io.py).
MAX_FILE_BYTES = 64 * 1024 * 1024
# What to do about a baseline that is not a file perf-gate can read.
RESTORE_FIX = f"restore it (git checkout / dvc checkout) or {RECORD_FIX}"


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
        self,
        value: Any,
        key: str,
        *,
        required: bool,
        non_negative: bool = False,
        unit: str = "",
        what: str = "",
    ) -> tuple[float, ...]:
        """A list of finite numbers; with ``unit``, each within that unit's plausible range
        (``what``, the benchmark and metric, names them in the message)."""
        if not isinstance(value, list) or (required and not value):
            raise self.fail(key, "expected a non-empty list of numbers")
        largest = PLAUSIBLE.get(unit, PLAUSIBLE_OTHER)
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
            if abs(number) > largest:
                raise self.fail(
                    key,
                    f"{what} holds {item!r}{' ' + unit if unit else ''}, beyond any plausible "
                    f"value (at most {largest:g}{' ' + unit if unit else ''} in magnitude)",
                )
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
        unit = raw["unit"]
        checks: dict[str, Any] = {
            "non_negative": unit in NON_NEGATIVE_UNITS,
            "unit": unit,
            "what": f"{raw['benchmark']} {raw['metric']}",
        }
        return Sample(
            benchmark=raw["benchmark"],
            metric=Metric(raw["metric"], unit, direction),
            values=self.numbers(raw.get("values"), f"{key}.values", required=True, **checks),
            replication=replication,
            calls=self.numbers(raw.get("calls", []), f"{key}.calls", required=False, **checks),
            first_calls=self.numbers(
                raw.get("first_calls", []), f"{key}.first_calls", required=False, **checks
            ),
            examples=self.examples(raw.get("examples"), f"{key}.examples"),
        )

    def examples(self, raw: Any, key: str) -> tuple[float, ...]:
        if raw is None:
            return ()
        try:
            decoded = examples.decode(raw)
        except (ValueError, binascii.Error) as exc:
            raise self.fail(key, f"unreadable per-example outcomes ({exc})") from None
        if not all(math.isfinite(value) for value in decoded):
            raise self.fail(key, "per-example outcomes hold an infinity or NaN")
        return decoded

    def benchmark_info(self, name: str, info: dict[str, Any]) -> None:
        """The parts of a benchmark's info that the decision and the report read: texts where
        they expect texts, finite numbers where they compute (the rest is shown as it is)."""
        key = f"info.{name}"
        for notes in ("notes", "row_notes"):
            value = info.get(notes)
            if value is not None and (
                not isinstance(value, list) or not all(isinstance(n, str) for n in value)
            ):
                raise self.fail(f"{key}.{notes}", "expected a list of texts")
        for number in ("gpu_ms_per_call", "wall_ms_per_call"):
            self.optional_number(info.get(number), f"{key}.{number}", PLAUSIBLE[UNIT_SECONDS])
        evaluation = info.get("eval")
        if evaluation is not None:
            if not isinstance(evaluation, dict):
                raise self.fail(f"{key}.eval", "expected a JSON object")
            count = evaluation.get("examples")
            if count is not None and (
                isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 10**12
            ):
                raise self.fail(
                    f"{key}.eval.examples", f"expected a count of examples, found {count!r}"
                )
            if not isinstance(evaluation.get("hash", ""), (str, type(None))):
                raise self.fail(f"{key}.eval.hash", "expected a hash string")
        parity = info.get("parity")
        if parity is not None:
            self.parity(parity, f"{key}.parity")

    def parity(self, parity: Any, key: str) -> None:
        if not isinstance(parity, dict):
            raise self.fail(key, "expected a JSON object")
        if not isinstance(parity.get("ok", True), bool):
            raise self.fail(f"{key}.ok", "expected true or false")
        for text in ("reference", "reason"):
            if not isinstance(parity.get(text, ""), (str, type(None))):
                raise self.fail(f"{key}.{text}", "expected a text")
        for number in ("top1_agreement", "max_abs_diff", "mean_abs_diff"):
            self.optional_number(parity.get(number), f"{key}.{number}", PLAUSIBLE_OTHER)
        bounds = parity.get("bounds")
        if bounds is not None:
            if not isinstance(bounds, dict):
                raise self.fail(f"{key}.bounds", "expected a JSON object")
            for name, value in bounds.items():
                self.optional_number(value, f"{key}.bounds.{name}", PLAUSIBLE_OTHER)

    def shard(self, value: Any) -> None:
        """``settings.shard``: nothing, or ``{index: I, count: N}`` with 1 <= I <= N <= 1000."""
        if value is None:
            return
        index = value.get("index") if isinstance(value, dict) else None
        count = value.get("count") if isinstance(value, dict) else None
        if (
            not isinstance(index, int)
            or not isinstance(count, int)
            or isinstance(index, bool)
            or isinstance(count, bool)
            or not 1 <= index <= count <= MAX_SHARDS
        ):
            raise self.fail(
                "settings.shard",
                f"expected {{index: I, count: N}} with 1 <= I <= N <= {MAX_SHARDS}, "
                f"found {value!r}",
            )

    def optional_number(self, value: Any, key: str, largest: float) -> None:
        """Nothing, or a finite number from 0 to ``largest``."""
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(key, f"expected a number, found {value!r}")
        if not 0 <= value <= largest or not math.isfinite(value):
            raise self.fail(key, f"found {value!r}; expected a number from 0 to {largest:g}")

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
            self.benchmark_info(name, value)
        for name, value in files.items():
            if not isinstance(value, str):
                raise self.fail(f"files.{name}", "expected a hash string")
        self.shard(settings.get("shard"))
        for name in ("memory_bytes", "cpu_count", "gpu_count", "threads"):
            value = environment.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.optional_number(value, f"environment.{name}", PLAUSIBLE[UNIT_BYTES])
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


_SPECIAL_FILES = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _refuse_special(path: Path, mode: int, fix: str, slug: str) -> None:
    """Raise BaselineError unless ``mode`` is a regular file's: a FIFO blocks a reader, a device
    such as /dev/zero never ends."""
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _SPECIAL_FILES if test(mode)), "a special file")
    try:
        via = f" (through the symlink to {os.readlink(path)})" if path.is_symlink() else ""
    except OSError:
        via = ""
    raise BaselineError(f"{path}: {kind}{via}, not a regular file; {fix}", slug=slug)


def open_regular(
    path: Path, *, fix: str = RESTORE_FIX, slug: str = "baseline-corrupt"
) -> IO[bytes]:
    """``path`` opened for reading in binary; BaselineError (naming the file, then ``fix``) unless
    it is a regular file, decided before a blocking open (a FIFO is never waited on).

    Raises FileNotFoundError and other OSErrors as ``open`` does.
    """
    _refuse_special(path, os.stat(path).st_mode, fix, slug)
    # O_NONBLOCK: a FIFO put in its place after the stat does not block the open either.
    handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        _refuse_special(path, os.fstat(handle).st_mode, fix, slug)
        os.set_blocking(handle, True)
        return os.fdopen(handle, "rb")
    except BaseException:
        os.close(handle)
        raise


def read_limited(
    path: Path,
    *,
    limit: int = MAX_FILE_BYTES,
    fix: str = RESTORE_FIX,
    slug: str = "baseline-corrupt",
) -> bytes:
    """The bytes of the regular file at ``path``, refused beyond ``limit`` bytes (BaselineError
    naming the file and the size, then ``fix``); see ``open_regular`` for the rest."""
    with open_regular(path, fix=fix, slug=slug) as stream:
        size = os.fstat(stream.fileno()).st_size
        payload = b"" if size > limit else stream.read(limit + 1)  # +1: a file that grew
    if size > limit or len(payload) > limit:
        shown = max(size, len(payload))
        raise BaselineError(
            f"{path}: {_size(shown, limit)}, more than the {_size(limit, 0)} perf-gate reads "
            f"from one file; {fix}",
            slug=slug,
        )
    return payload


def _size(size: int, limit: int) -> str:
    """``66.8 MiB``; in bytes below 1 MiB and where MiB would round to ``limit``'s figure."""
    mebibytes = f"{size / (1024 * 1024):.1f}".removesuffix(".0")
    if size < 1024 * 1024 or (
        limit and mebibytes == f"{limit / (1024 * 1024):.1f}".removesuffix(".0")
    ):
        return f"{size} bytes"
    return f"{mebibytes} MiB"


FileState = tuple[int, ...] | None


def file_state(path: Path) -> FileState:
    """What identifies the file at ``path`` now (device, inode, size, modification time of the
    name and of what it points to), or None when there is none: an atomic replacement, an
    edit or a new file changes it. ``--save`` writes only over the baseline its run read."""
    try:
        named = os.lstat(path)
    except OSError:  # none there (or no folder): writing will say what is wrong
        return None
    try:
        target = os.stat(path)
        pointed: tuple[int, ...] = (target.st_ino, target.st_size, target.st_mtime_ns)
    except OSError:
        pointed = ()
    return (named.st_dev, named.st_ino, named.st_size, named.st_mtime_ns, *pointed)


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
        text = read_limited(path).decode("utf-8")
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
    except ValueError:  # an integer of more digits than Python converts (4300)
        raise reader.fail("content", "a number of thousands of digits") from None
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


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove the temporary files that writers of ``path`` killed before their rename left
    (``.<name>.<8 random>.tmp``); returns them. Only for callers holding the lock that every
    writer of ``path`` holds (the baseline lock), so none of them is another's live file."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp")
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    removed = []
    for name in names:
        if pattern.fullmatch(name):
            (path.parent / name).unlink(missing_ok=True)
            removed.append(path.parent / name)
    return removed


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
