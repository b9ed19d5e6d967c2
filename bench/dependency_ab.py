"""What measuring a dependency change for real costs, and what it shows (docs/dependencies.md).

A pull request that changes a pin gets its base side measured in the base revision's own
environment, built with uv over this interpreter's packages (``gate/measure/base_env.py``).
This script measures, on this machine:

1. **Build time and disk**: the environment built cold (empty uv cache and environment cache),
   with uv's cache warm (the environment cache emptied), and cached (a later run of the same
   change), for a small package from a local wheelhouse (offline) and, unless
   ``--no-registry``, for an older onnxruntime from the package registry.
2. **The gate's overhead**: wall time of ``perf-gate run --ab HEAD~1`` on a small repository
   whose pull request changes only a pin, against the same run where nothing differs (a plain
   ab run), with the environment cached. Its verdicts: the pinned package at two versions with
   the same code (an A/A across two environments: ``unchanged``), and with a version that does
   twice the work per call (``regression``).
3. **A real upgrade** (unless ``--no-registry``): the bundled digits example (its
   ``onnxruntime`` variant) measured with the base revision pinning an older onnxruntime and
   the head pinning the installed one, every row and its interval.

    .venv/bin/python bench/dependency_ab.py                 # all of it (registry needed for 1b, 3)
    .venv/bin/python bench/dependency_ab.py --no-registry   # offline parts only
    .venv/bin/python bench/dependency_ab.py --old-onnxruntime 1.22.0
    .venv/bin/python bench/dependency_ab.py --no-registry --trials 10 --noisy
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gate.measure import base_env  # noqa: E402
from tests.integration._wheels import MODEL, MODEL_CONFIG, unpacked, wheel  # noqa: E402

PERF_GATE = Path(sys.executable).with_name("perf-gate")
IDENTITY = ["-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
WORK = "VERSION = {version!r}\n\n\ndef compute():\n    return sum(range({size}))\n"
CONFIG = (
    MODEL_CONFIG
    + """policy: {diagnose: never}
measure: {warmup: 5, min_calls: 100, min_time: 0.05s, threads: 1}
"""
)


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *IDENTITY, *args], cwd=repo, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def size_of(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def timed_build(specs: list[str], cache: Path) -> tuple[float, str, Path]:
    started = time.perf_counter()
    env = base_env.build(specs, cache)
    return time.perf_counter() - started, env.origin, Path(env.python).parents[1]


def build_rows(label: str, specs: list[str], work: Path) -> list[tuple[str, ...]]:
    """Cold, uv-warm and cached builds of ``specs`` with a fresh uv cache under ``work``."""
    os.environ["UV_CACHE_DIR"] = str(work / f"uv-cache-{label}")
    cache = work / f"envs-{label}"
    rows = []
    for case in ("cold", "uv cache warm", "cached"):
        if case == "uv cache warm":
            shutil.rmtree(cache, ignore_errors=True)
        seconds, origin, folder = timed_build(specs, cache)
        rows.append((label, case, origin, f"{seconds:.2f} s", mib(size_of(folder))))
    rows[-1] += (mib(size_of(Path(os.environ["UV_CACHE_DIR"]))),)
    rows[0] += ("",)
    rows[1] += ("",)
    return rows


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def gate(repo: Path, env: dict[str, str]) -> tuple[float, dict[str, Any], str]:
    started = time.perf_counter()
    done = subprocess.run(
        [str(PERF_GATE), "run", "--ab", "HEAD~1"],
        cwd=repo,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=False,
    )
    seconds = time.perf_counter() - started
    path = repo / ".perf-gate" / "comparison.json"
    if done.returncode not in (0, 1) or not path.is_file():
        raise SystemExit(f"perf-gate run failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return seconds, json.loads(path.read_text(encoding="utf-8")), done.stdout


def pin_repo(where: Path, base_pin: str, head_pin: str) -> Path:
    where.mkdir(parents=True)
    files = {
        "workmodel.py": MODEL,
        "perf-gate.yaml": CONFIG,
        "requirements.txt": f"tinypkg=={base_pin}\n",
        ".gitignore": ".perf-gate/\n",
    }
    for name, text in files.items():
        (where / name).write_text(text, encoding="utf-8")
    git(where, "init", "-q", "-b", "main")
    git(where, "add", "-A")
    git(where, "commit", "-q", "-m", "base")
    (where / "requirements.txt").write_text(f"tinypkg=={head_pin}\n", encoding="utf-8")
    (where / "README.md").write_text("a change\n", encoding="utf-8")
    git(where, "add", "-A")
    git(where, "commit", "-q", "-m", "head")
    return where


def row_of(data: dict[str, Any], benchmark: str, metric: str = "latency") -> dict[str, Any]:
    for item in data["comparisons"]:
        if item["benchmark"] == benchmark and item["metric"] == metric:
            return dict(item)
    raise SystemExit(f"no {benchmark} {metric} row")


def change(item: dict[str, Any]) -> str:
    def pct(value: float | None) -> str:
        return "?" if value is None else f"{value * 100:+.1f}%"

    low, high = pct(item.get("ci_low")), pct(item.get("ci_high"))
    return f"{pct(item.get('relative_change'))} [{low}, {high}]"


def value(item: dict[str, Any], side: str) -> str:
    number, unit = item.get(side), item.get("unit") or ""
    if number is None:
        return "?"
    if unit == "s":
        return f"{number * 1e6:.1f} us"
    if unit == "B":
        return f"{number / 2**20:.1f} MiB"
    return f"{number:.4g} {unit}".strip()


def overhead(work: Path, trials: int) -> str:
    """Section 2: a pin-only change (cached environment) against a plain ab run, ``trials``
    gate runs of each."""
    house = work / "wheelhouse"
    base_size, double = 20_000, 40_000
    wheel(house, "tinypkg", "1.0", WORK.format(version="1.0", size=base_size))
    wheel(house, "tinypkg", "1.1", WORK.format(version="1.1", size=base_size))  # same code
    wheel(house, "tinypkg", "2.0", WORK.format(version="2.0", size=double))  # twice the work
    rows = []
    for label, head_version, base_pin in (
        ("plain ab (no pin change)", "1.1", "1.1"),
        ("pin change, same code (A/A)", "1.1", "1.0"),
        ("pin change, 2x work", "2.0", "1.0"),
    ):
        head = unpacked(house / f"tinypkg-{head_version}-py3-none-any.whl", work / f"head-{label}")
        env = {
            "PYTHONPATH": str(head),
            "UV_FIND_LINKS": str(house),
            "UV_OFFLINE": "1",
            "UV_NO_CONFIG": "1",
            "UV_CACHE_DIR": str(work / "uv-cache-gate"),
            base_env.CACHE_ENV: str(work / "envs-gate"),
        }
        repo = pin_repo(work / f"repo-{len(rows)}", base_pin, head_version)
        if base_pin != head_version:  # build it first: the timed runs use the cache
            gate(repo, env)
        walls, verdicts, changes, modes, how = [], {}, [], set(), "-"
        for _ in range(trials):
            seconds, data, _ = gate(repo, env)
            item = row_of(data, "work[torch]")
            how = (data.get("dependencies") or {}).get("base_environment", "-")
            walls.append(seconds)
            verdicts[item["verdict"]] = verdicts.get(item["verdict"], 0) + 1
            changes.append(item["relative_change"])
            modes.add(item["mode"])
        walls.sort()
        changes.sort()
        counted = ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items()))
        rows.append(
            (
                label,
                how,
                f"{walls[len(walls) // 2]:.1f} s",
                "/".join(sorted(modes)),
                f"{changes[len(changes) // 2] * 100:+.1f}%",
                f"{changes[0] * 100:+.1f}% .. {changes[-1] * 100:+.1f}%",
                counted,
            )
        )
    header = (
        "case",
        "base side",
        "median wall",
        "mode",
        "median change",
        "range",
        f"verdicts of {trials}",
    )
    return table(header, rows)


def digits_upgrade(work: Path, old: str) -> str:
    """Section 3: the digits example across an onnxruntime upgrade."""
    installed = metadata.version("onnxruntime")
    repo = work / "digits-repo"
    shutil.copytree(ROOT / "examples" / "digits", repo / "digits")
    config = """
models:
  digits-mlp:
    torch: digits.model:build
    input: digits.model:example_batch
    variants: [onnxruntime]
    metrics: [latency, throughput, memory]
    batch_sizes: [1, 32]
    eval:
      data: digits/digits-test.npz
      metrics: [accuracy]
policy: {diagnose: never}
measure: {warmup: 20, min_calls: 100, min_time: 0.1s, threads: 1, probes: 2}
"""
    (repo / "perf-gate.yaml").write_text(config, encoding="utf-8")
    (repo / "requirements.txt").write_text(f"onnxruntime=={old}\n", encoding="utf-8")
    (repo / ".gitignore").write_text(".perf-gate/\n", encoding="utf-8")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    (repo / "requirements.txt").write_text(f"onnxruntime=={installed}\n", encoding="utf-8")
    git(repo, "commit", "-q", "-am", f"onnxruntime {old} -> {installed}")
    env = {base_env.CACHE_ENV: str(work / "envs-digits"), "UV_CACHE_DIR": str(work / "uv-digits")}
    seconds, data, _ = gate(repo, env)
    block = data.get("dependencies") or {}
    rows = [
        (
            f"{item['benchmark']} {item['metric']}",
            f"{value(item, 'baseline')} -> {value(item, 'current')}",
            change(item),
            str(item["mode"] or "-"),
            str(item.get("n_current")),
            item["verdict"] + (f" ({item['note']})" if item.get("note") else ""),
        )
        for item in data["comparisons"]
    ]
    header = ("row", "base -> head", "change [CI]", "mode", "n", "verdict")
    sides = block.get("sides", {})
    lines = [
        f"onnxruntime {old} (base) -> {installed} (head); base side: "
        f"{block.get('base_environment')} ({block.get('build_seconds')} s to build); "
        f"fingerprints base {sides.get('base', {}).get('fingerprint')} / head "
        f"{sides.get('head', {}).get('fingerprint')}; gate wall {seconds:.0f} s",
        table(header, rows),
    ]
    notes = [n for n in data.get("notes", []) if "dependencies" in n]
    lines += [f"note: {n}" for n in notes]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-registry", action="store_true", help="offline parts only")
    parser.add_argument("--old-onnxruntime", default="1.22.0", help="the base's onnxruntime")
    parser.add_argument("--trials", type=int, default=1, help="gate runs per case in part 2")
    parser.add_argument(
        "--noisy", action="store_true", help="beside a CPU-bound neighbour in bursts (50%% duty)"
    )
    args = parser.parse_args()
    stop = multiprocessing.Event()
    if args.noisy:
        sys.path.insert(0, str(ROOT / "bench"))
        from live_verdicts import neighbour

        multiprocessing.Process(target=neighbour, args=(stop, 7), daemon=True).start()
    try:
        return run(args)
    finally:
        stop.set()


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="perf-gate-dependency-ab-") as scratch:
        work = Path(scratch)
        house = work / "build-wheelhouse"
        wheel(house, "tinypkg", "1.0", WORK.format(version="1.0", size=200))
        saved = dict(os.environ)
        os.environ.update({"UV_FIND_LINKS": str(house), "UV_OFFLINE": "1", "UV_NO_CONFIG": "1"})
        rows = build_rows("tinypkg==1.0 (wheelhouse)", ["tinypkg==1.0"], work)
        os.environ.clear()
        os.environ.update(saved)
        if not args.no_registry:
            spec = f"onnxruntime=={args.old_onnxruntime}"
            rows += build_rows(f"{spec} (registry)", [spec], work)
            os.environ.clear()
            os.environ.update(saved)
        header = ("requirements", "build", "origin", "time", "environment", "uv cache")
        print("1. Building the base revision's environment")
        print(table(header, rows))
        print("\n2. The gate with a pin change (environment cached) against a plain ab run")
        print(overhead(work, args.trials))
        if not args.no_registry:
            print("\n3. The digits example across an onnxruntime upgrade")
            print(digits_upgrade(work, args.old_onnxruntime))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
