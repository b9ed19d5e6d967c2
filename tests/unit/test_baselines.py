"""Which baseline a run uses, DVC pointers, error mapping, environment mismatch, file changes.

No dvc process runs here (tests/integration/test_dvc_baselines.py drives the real one); the
stderr texts below are what dvc 3 prints in those situations.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest

from gate.config import GateConfig, load_config
from gate.core.types import Direction, Metric, Policy, RunRecord, Sample, Threshold, Verdict
from gate.decide.compare import decide, file_changes
from gate.errors import BaselineError, ConfigError
from gate.store import baseline_store as baselines
from gate.store.dvc import Dvc, file_md5, pointer_of, read_pointer, tracked_files

LATENCY = Metric("latency", "s", Direction.LOWER)
MEMORY = Metric("memory.peak", "B", Direction.LOWER)


def config(tmp_path: Path, text: str = "") -> GateConfig:
    path = tmp_path / "perf-gate.yaml"
    path.write_text("baseline: baselines/main.json\n" + text, encoding="utf-8")
    return load_config(path)


def write_pointer(data: Path, md5: str) -> Path:
    pointer = pointer_of(data)
    pointer.parent.mkdir(parents=True, exist_ok=True)
    pointer.write_text(
        f"outs:\n- md5: {md5}\n  size: 3\n  hash: md5\n  path: {data.name}\n", encoding="utf-8"
    )
    return pointer


def test_keyed_path_puts_the_key_in_the_name() -> None:
    base = Path("baselines/main.json")
    assert baselines.keyed_path(base, "cpu") == Path("baselines/main@cpu.json")
    assert baselines.keyed_path(base, None) == base
    assert baselines.keyed_path(base, "gpu", "nightly") == Path("baselines/nightly@gpu.json")
    assert baselines.history_path(Path("b/main@cpu.json")) == Path("b/main@cpu.history.json")


def test_key_comes_from_override_then_config_then_record_then_fingerprint(tmp_path: Path) -> None:
    auto = config(tmp_path)
    assert baselines.resolve_key(auto, "gpu-a100") == "gpu-a100"
    assert baselines.resolve_key(auto, None, "fromrecord") == "fromrecord"
    assert len(baselines.resolve_key(auto, None) or "") == 12  # the fingerprint's key
    fixed = config(tmp_path, "baseline_key: ci-cpu\n")
    assert baselines.resolve_key(fixed, None, "fromrecord") == "ci-cpu"
    assert baselines.resolve_key(config(tmp_path, "baseline_key: none\n"), None) is None


def test_locate_prefers_the_keyed_file_then_the_unkeyed_one(tmp_path: Path) -> None:
    cfg = config(tmp_path, "baseline_key: cpu\n")
    folder = tmp_path / "baselines"
    # Nothing yet and an explicit key: the keyed file (what --save will write).
    assert baselines.locate(cfg) == folder / "main@cpu.json"
    auto = config(tmp_path)
    assert baselines.locate(auto) == folder / "main.json"  # auto keeps the old layout for --save
    folder.mkdir()
    (folder / "main.json").write_text("{}", encoding="utf-8")
    assert baselines.locate(cfg) == folder / "main.json"  # fallback to the un-keyed file
    write_pointer(folder / "main@cpu.json", "0" * 32)  # promoted, not pulled: still this one
    assert baselines.locate(cfg) == folder / "main@cpu.json"
    assert baselines.locate(cfg, "gpu") == folder / "main.json"
    assert baselines.locate(config(tmp_path, "baseline_key: none\n")) == folder / "main.json"


def test_a_dangling_keyed_baseline_is_not_skipped_for_the_unkeyed_one(tmp_path: Path) -> None:
    """DVC's symlink cache after a ``dvc gc``: the keyed baseline is a link to nothing. It must
    stay the one located (reading it then fails with the fix), not fall back silently."""
    cfg = config(tmp_path, "baseline_key: cpu\n")
    folder = tmp_path / "baselines"
    folder.mkdir()
    (folder / "main.json").write_text("{}", encoding="utf-8")
    (folder / "main@cpu.json").symlink_to(tmp_path / "cache" / "gone")
    assert baselines.locate(cfg) == folder / "main@cpu.json"


def test_check_local_refuses_an_unpulled_baseline_and_notes_local_changes(tmp_path: Path) -> None:
    data = tmp_path / "main@k.json"
    assert baselines.check_local(data, save=False) == ()  # not tracked: nothing to say
    write_pointer(data, "0" * 32)
    with pytest.raises(BaselineError, match="not pulled; run `perf-gate baseline pull`") as raised:
        baselines.check_local(data, save=False)
    assert raised.value.slug == "baseline-not-pulled"
    assert baselines.check_local(data, save=True) == ()
    data.write_text("{}\n", encoding="utf-8")
    (note,) = baselines.check_local(data, save=False)
    assert "differs from its DVC pointer" in note
    assert "pull --force" in note
    write_pointer(data, file_md5(data))
    assert baselines.check_local(data, save=False) == ()


def test_read_pointer_parses_dvc_files_and_names_a_damaged_one(tmp_path: Path) -> None:
    pointer = write_pointer(tmp_path / "b" / "main.json", "a01637863c1f9585c3e38cde6ce20940")
    parsed = read_pointer(pointer)
    assert parsed.out == tmp_path / "b" / "main.json"
    assert parsed.md5 == "a01637863c1f9585c3e38cde6ce20940"
    assert parsed.cache_object == Path(".dvc/cache/files/md5/a0/1637863c1f9585c3e38cde6ce20940")
    pointer.write_text("outs:\n- size: 3\n", encoding="utf-8")
    with pytest.raises(BaselineError, match="not a DVC pointer with an md5") as raised:
        read_pointer(pointer)
    assert raised.value.slug == "dvc-pointer"


def test_tracked_files_hash_what_is_there_and_skip_the_baselines(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"weights")
    write_pointer(tmp_path / "model.onnx", "f" * 32)  # stale pointer: the file's md5 counts
    write_pointer(tmp_path / "data" / "eval.npz", "e" * 32)  # not pulled
    write_pointer(tmp_path / "baselines" / "main.json", "b" * 32)
    (tmp_path / ".venv").mkdir()
    write_pointer(tmp_path / ".venv" / "x.bin", "c" * 32)
    (tmp_path / "images").mkdir()  # a tracked folder: its pointer's md5, never walked into
    write_pointer(tmp_path / "images", "d" * 32 + ".dir")
    write_pointer(tmp_path / "images" / "inner.bin", "a" * 32)
    found = tracked_files(tmp_path, skip=[tmp_path / "baselines"])
    assert found == {
        "model.onnx": file_md5(tmp_path / "model.onnx"),
        "data/eval.npz": "missing",
        "images": "d" * 32 + ".dir",
    }


@pytest.mark.parametrize(
    ("args", "output", "slug", "fragment"),
    [
        (
            ("pull", "b.dvc"),
            "ERROR: you are not inside of a DVC repository (checked up to mount point '/')",
            "dvc-no-repo",
            "run `dvc init`",
        ),
        (
            ("push", "b.dvc"),
            "ERROR: failed to push data to the cloud - config file error: no remote specified "
            "in /r. Create a default remote with",
            "dvc-no-remote",
            "dvc remote add -d",
        ),
        (
            ("pull", "b.dvc"),
            "WARNING: Some of the cache files do not exist neither locally nor on remote. "
            "Missing cache files:\nmd5: a0\nERROR: failed to pull data from the cloud",
            "dvc-missing-object",
            "neither in the DVC cache nor on the remote",
        ),
        (
            ("pull", "b.dvc"),
            "ERROR: unexpected error - [Errno 20] Not a directory: '/x/remote/files'\n\n"
            "Having any troubles? Hit us up at https://dvc.org/support, we are always happy",
            "dvc-remote",
            "cannot be reached (exit code 255): ERROR: unexpected error - [Errno 20]",
        ),
        (("add", "x"), "ERROR: something new", "dvc-failed", "failed with exit code 255"),
    ],
)
def test_dvc_errors_become_one_line_with_the_fix(
    args: tuple[str, ...], output: str, slug: str, fragment: str, tmp_path: Path
) -> None:
    error = Dvc(tmp_path, executable="dvc")._error(args, 255, output)
    assert error.slug == slug
    assert fragment in error.message
    assert "\n" not in error.one_line()


def test_without_dvc_the_commands_say_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    dvc = Dvc(tmp_path)
    with pytest.raises(BaselineError, match=r"pip install 'perf-gate\[dvc\]'") as raised:
        dvc.pull(tmp_path / "b.dvc")
    assert raised.value.slug == "dvc-missing"


@pytest.mark.parametrize("variable", ["GITHUB_HEAD_REF", "GITHUB_EVENT_NAME"])
def test_a_pull_request_run_never_writes_the_baseline(
    variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_HEAD_REF", raising=False)
    monkeypatch.delenv("GITHUB_EVENT_NAME", raising=False)
    baselines.refuse_pull_request_save()  # a local run may save
    monkeypatch.setenv(variable, "pull_request" if variable == "GITHUB_EVENT_NAME" else "topic")
    with pytest.raises(BaselineError, match="pull-request run: it never writes") as raised:
        baselines.refuse_pull_request_save()
    assert raised.value.slug == "baseline-branch"


def test_age_reads_iso_times() -> None:
    now = dt.datetime(2026, 1, 4, 12, tzinfo=dt.timezone.utc)
    assert baselines.age("2026-01-01T12:00:00+00:00", now) == "3 days"
    assert baselines.age("2026-01-04T11:00:00+00:00", now) == "1 hour"
    assert baselines.age("2026-01-04T12:00:00+00:00", now) == "just now"
    assert baselines.age("yesterday", now) == "unknown"


def test_config_keys_for_baselines(tmp_path: Path) -> None:
    cfg = config(tmp_path, "baseline_key: ci-gpu\nbaseline_history: 5\n")
    assert (cfg.baseline_key, cfg.baseline_history) == ("ci-gpu", 5)
    defaults = config(tmp_path)
    assert (defaults.baseline_key, defaults.baseline_history) == ("auto", 30)
    assert defaults.policy.on_environment_mismatch == "warn"
    skip = config(tmp_path, "policy: {on_environment_mismatch: skip-timing}\n")
    assert skip.policy.on_environment_mismatch == "skip-timing"
    for text, fragment in (
        ("baseline_key: a/b\n", "baseline_key: expected 'auto', 'none' or a name"),
        ("baseline_history: 0\n", "baseline_history: expected an integer >= 1"),
        ("policy: {on_environment_mismatch: ignore}\n", "unknown value 'ignore'; expected one"),
    ):
        with pytest.raises(ConfigError, match=fragment):
            config(tmp_path, text)


def run(key: str, values: tuple[float, ...], files: dict[str, str] | None = None) -> RunRecord:
    return RunRecord(
        samples=(
            Sample(benchmark="m", metric=LATENCY, values=values),
            Sample(benchmark="m", metric=MEMORY, values=(1e8, 1e8, 1e8)),
        ),
        environment={"key": key},
        files=files or {},
    )


POLICY = Policy(thresholds={"latency": Threshold(value=0.05), "memory": Threshold(value=0.02)})
SLOW = (2e-3, 2.02e-3, 1.98e-3, 2.01e-3)
FAST = (1e-3, 1.01e-3, 0.99e-3, 1.0e-3)


def verdicts(policy: Policy, baseline_key: str = "a") -> dict[str, tuple[Verdict, bool, str]]:
    result = decide(run(baseline_key, FAST), run("b", SLOW), policy)
    return {c.metric.name: (c.verdict, c.advisory, c.note) for c in result.comparisons}


def test_environment_mismatch_warn_labels_timing_advisory() -> None:
    found = verdicts(POLICY)
    assert found["latency"][:2] == (Verdict.REGRESSION, True)
    assert found["memory.peak"][0] is Verdict.UNCHANGED
    assert decide(run("a", FAST), run("b", SLOW), POLICY).exit_code == 0


def test_environment_mismatch_fail_and_skip_timing() -> None:
    fail = Policy(thresholds=POLICY.thresholds, on_environment_mismatch="fail")
    verdict, advisory, note = verdicts(fail)["latency"]
    assert (verdict, advisory) == (Verdict.ERROR, False)
    assert "on_environment_mismatch: fail" in note
    assert "promote a baseline on this runner" in note
    assert decide(run("a", FAST), run("b", SLOW), fail).exit_code == 3
    skip = Policy(thresholds=POLICY.thresholds, on_environment_mismatch="skip-timing")
    assert verdicts(skip)["latency"][:2] == (Verdict.INCONCLUSIVE, True)
    assert decide(run("a", FAST), run("b", SLOW), skip).exit_code == 0
    # Same environment: the policy does not apply, the regression fails.
    assert verdicts(fail, baseline_key="b")["latency"][:2] == (Verdict.REGRESSION, False)


def test_changed_model_or_data_files_are_noted() -> None:
    baseline = run("a", FAST, {"model.onnx": "1" * 32, "eval.npz": "2" * 32, "old.bin": "3" * 32})
    current = run("a", FAST, {"model.onnx": "9" * 32, "eval.npz": "2" * 32, "new.bin": "4" * 32})
    (note,) = file_changes(baseline, current)
    assert note == (
        "model or data files changed since the baseline: model.onnx (md5 11111111 -> 99999999), "
        "new.bin (new), old.bin (gone)"
    )
    assert decide(baseline, current, POLICY).notes == (note,)
    assert file_changes(baseline, baseline) == ()
    assert file_changes(None, current) == ()
