"""Baselines on real DVC, offline: a git + DVC repository with a local-directory remote in
tmp_path, ``perf-gate baseline ...`` run as a user would, and every failure the issue names.

DVC commands take about half a second each, so the repositories are built once per module and
copied (the remote's URL is relative, so a copy of repository + remote is self-contained).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from gate.core.types import Direction, GitInfo, Metric, RunRecord, Sample
from gate.measure.environment import environment_key, fingerprint
from gate.store.dvc import file_md5, pointer_of, read_pointer
from gate.store.records import write_record

from ._support import clean_env, read_json, run_cli_here, write_matmul_onnx

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
REAL_DVC = BIN / "dvc"
LATENCY = Metric("latency", "s", Direction.LOWER)
MEMORY = Metric("memory.peak", "B", Direction.LOWER)
IDENTITY = ["-c", "user.name=test", "-c", "user.email=test@example.invalid"]

if not REAL_DVC.is_file():  # pragma: no cover - `make test` installs the dvc extra
    pytest.skip("dvc is not installed in this environment", allow_module_level=True)


def env(**extra: str) -> dict[str, str]:
    return clean_env(DVC_NO_ANALYTICS="1", **extra)


def sh(cwd: Path, *command: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(command), cwd=cwd, env=env(**extra), capture_output=True, text=True, check=False
    )


def git(repo: Path, *args: str) -> str:
    done = sh(repo, "git", *IDENTITY, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def dvc(repo: Path, *args: str) -> str:
    done = sh(repo, str(REAL_DVC), *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


@dataclass
class Ran:
    ret: int
    output: str


def perf_gate(repo: Path, *args: str, path_prefix: str = "") -> Ran:
    extra = {"PATH": f"{path_prefix}{os.pathsep}{os.environ['PATH']}"} if path_prefix else {}
    done = sh(repo, str(BIN / "perf-gate"), *args, **extra)
    return Ran(done.returncode, done.stdout + done.stderr)


def perf_gate_here(repo: Path, *args: str) -> Ran:
    """``perf-gate`` in this process, for what only reads files or is refused before any dvc
    command: starting an interpreter would be most of its cost."""
    done = run_cli_here(repo, *args)
    return Ran(done.ret, done.output)


THIS = fingerprint(1)
KEY = environment_key(THIS)


def make_record(
    commit: str, latency: float, *, environment: dict[str, object] | None = None
) -> RunRecord:
    environment = dict(environment or {**THIS, "key": KEY})
    values = tuple(latency * f for f in (0.99, 1.0, 1.01, 1.005, 0.995))
    return RunRecord(
        samples=(
            Sample(
                benchmark="m[torch]",
                metric=LATENCY,
                values=values,
                calls=tuple(latency for _ in range(50)),
            ),
            Sample(benchmark="m[torch]", metric=MEMORY, values=(2.0e8, 2.0e8, 2.0e8)),
        ),
        environment=environment,
        git=GitInfo(commit=commit, ref="main", dirty=False),
        created="2026-01-01T00:00:00+00:00",
    )


@dataclass
class Project:
    root: Path  # holds repo/ and remote/

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    @property
    def remote(self) -> Path:
        return self.root / "remote"

    @property
    def baseline(self) -> Path:
        return self.repo / "baselines" / f"main@{KEY}.json"

    @property
    def history(self) -> Path:
        return self.repo / "baselines" / f"main@{KEY}.history.json"

    def results(self, record: RunRecord, name: str = "results.json") -> Path:
        path = self.repo / ".perf-gate" / name
        write_record(path, record)
        return path

    def commit_pointers(self) -> None:
        git(self.repo, "add", "baselines")
        git(self.repo, "commit", "-q", "-m", "promote baseline")

    def snapshot(self) -> dict[str, bytes]:
        folder = self.repo / "baselines"
        return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _new_repo(root: Path, *, remote: bool = True) -> Project:
    project = Project(root)
    project.repo.mkdir(parents=True)
    (project.repo / "perf-gate.yaml").write_text("baseline: baselines/main.json\n")
    (project.repo / ".gitignore").write_text(".perf-gate/\n")
    git(project.repo, "init", "-q", "-b", "main")
    dvc(project.repo, "init", "-q")
    if remote:
        project.remote.mkdir()
        # Relative (dvc stores it as ../../remote, from .dvc/): a copied folder of repo +
        # remote stays self-contained.
        dvc(project.repo, "remote", "add", "-d", "store", "../remote")
    git(project.repo, "add", "-A")
    git(project.repo, "commit", "-q", "-m", "init")
    return project


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Project]:
    """An empty repository, and one with a baseline promoted (commit c1) and committed."""
    empty = _new_repo(tmp_path_factory.mktemp("empty"))
    promoted = Project(tmp_path_factory.mktemp("promoted"))
    shutil.copytree(empty.root, promoted.root, dirs_exist_ok=True, symlinks=True)
    source = promoted.results(make_record("c1" * 20, 1e-3))
    ran = perf_gate(promoted.repo, "baseline", "promote", "--from", str(source))
    assert ran.ret == 0, ran.output
    promoted.commit_pointers()
    return {"empty": empty, "promoted": promoted}


def copy(template: Project, tmp_path: Path) -> Project:
    shutil.copytree(template.root, tmp_path / "p", symlinks=True)
    return Project(tmp_path / "p")


def drop_local(project: Project) -> None:
    """What a fresh checkout has: pointers, no content, no cache."""
    shutil.rmtree(project.repo / ".dvc" / "cache", ignore_errors=True)
    project.baseline.unlink(missing_ok=True)
    project.history.unlink(missing_ok=True)


def test_promote_delete_cache_pull_and_compare(
    templates: dict[str, Project], tmp_path: Path
) -> None:
    project = copy(templates["empty"], tmp_path)
    source = project.results(make_record("a" * 40, 1e-3))
    ran = perf_gate(project.repo, "baseline", "promote")  # --from defaults to results.json
    assert ran.ret == 0, ran.output
    assert "git add baselines/" in ran.output  # says which pointers to commit
    pointer = read_pointer(pointer_of(project.baseline))
    assert pointer.md5 == file_md5(project.baseline)
    assert (project.remote / "files" / "md5" / pointer.md5[:2] / pointer.md5[2:]).is_file()
    assert "/" + project.baseline.name in (project.repo / "baselines" / ".gitignore").read_text()
    promoted = project.baseline.read_bytes()
    project.commit_pointers()

    drop_local(project)
    status = perf_gate_here(project.repo, "baseline", "status")
    assert "not pulled yet" in status.output
    pulled = perf_gate(project.repo, "baseline", "pull")
    assert pulled.ret == 0, pulled.output
    assert project.baseline.read_bytes() == promoted
    assert perf_gate(project.repo, "baseline", "pull").output.count("up to date") == 2

    status = perf_gate_here(project.repo, "baseline", "status")
    assert status.ret == 0, status.output
    assert "the local copy matches its .dvc pointer" in status.output
    assert "aaaaaaaaaaaa (main)" in status.output
    assert "history:      1 promotions" in status.output

    slower = project.results(make_record("b" * 40, 2e-3), "slower.json")
    compared = perf_gate(project.repo, "compare", str(project.baseline), str(slower))
    assert compared.ret == 1, compared.output
    assert "regression" in compared.output
    same = perf_gate(project.repo, "compare", str(project.baseline), str(source))
    assert same.ret == 0, same.output


def test_history_keeps_promotions_newest_first_and_feeds_a_trend(
    templates: dict[str, Project], tmp_path: Path
) -> None:
    project = copy(templates["promoted"], tmp_path)
    (project.repo / "perf-gate.yaml").write_text(
        "baseline: baselines/main.json\nbaseline_history: 2\n"
    )
    for commit, latency in (("c2" * 20, 1.5e-3), ("c3" * 20, 2e-3)):
        source = project.results(make_record(commit, latency))
        ran = perf_gate(project.repo, "baseline", "promote", "--from", str(source))
        assert ran.ret == 0, ran.output
    shown = perf_gate(project.repo, "baseline", "history")
    assert shown.ret == 0, shown.output
    lines = [line for line in shown.output.splitlines() if line.startswith("20")]
    assert [line.split()[1] for line in lines] == ["c3c3c3c3c3c3", "c2c2c2c2c2c2"]  # bounded: 2
    trend = perf_gate(project.repo, "baseline", "history", "--benchmark", "m[torch]")
    assert "latency [s]: 0.0015 -> 0.002" in trend.output


def test_a_creep_fails_the_promotion_beyond_its_drift_budget_and_history_names_the_moves(
    templates: dict[str, Project], tmp_path: Path
) -> None:
    project = copy(templates["promoted"], tmp_path)  # c1: 1 ms
    (project.repo / "perf-gate.yaml").write_text(
        "baseline: baselines/main.json\npolicy: {drift: {latency: 10% over 8 promotions}}\n"
    )
    codes = []
    for step in range(1, 5):  # +4% a promotion, each under a pull request's 5% threshold
        source = project.results(make_record(f"d{step}" * 20, 1e-3 * 1.04**step))
        ran = perf_gate(project.repo, "baseline", "promote", "--from", str(source))
        codes.append(ran.ret)
    assert codes == [0, 0, 1, 1], ran.output  # +8.2% within 10%; +12.5% beyond it
    (line,) = [x for x in ran.output.splitlines() if "drift:" in x]
    assert line.startswith(
        "perf-gate: drift: m[torch] latency moved +17.0% (worse) over the last 4"
    )
    assert "from 1 ms at c1c1c1c1c1c1 to 1.17 ms at d4d4d4d4d4d4" in line
    assert line.endswith("(policy.drift)")
    assert read_json(project.baseline)["git"]["commit"] == "d4" * 20  # promoted all the same
    shown = perf_gate(project.repo, "history", "--changes")
    assert shown.ret == 0, shown.output
    assert "change points over 5 promotion(s), 1 benchmark(s)" in shown.output


def test_two_environments_keep_separate_baselines(
    templates: dict[str, Project], tmp_path: Path
) -> None:
    project = copy(templates["promoted"], tmp_path)
    gpu_environment = {**THIS, "gpu": "NVIDIA H100"}
    gpu_key = environment_key(gpu_environment)
    gpu_record = make_record("d" * 40, 5e-4, environment={**gpu_environment, "key": gpu_key})
    source = project.results(gpu_record, "gpu.json")
    ran = perf_gate(project.repo, "baseline", "promote", "--from", str(source))
    assert ran.ret == 0, ran.output
    gpu_baseline = project.repo / "baselines" / f"main@{gpu_key}.json"
    assert gpu_baseline.is_file()
    assert read_json(project.baseline)["git"]["commit"] == "c1" * 20  # the CPU one untouched
    status = perf_gate_here(project.repo, "baseline", "status", "--baseline-key", gpu_key)
    assert f"main@{gpu_key}.json" in status.output
    assert "dddddddddddd" in status.output
    assert "NVIDIA H100" in status.output
    # Across environments timing verdicts are advisory (default warn): the run passes.
    slower = project.results(make_record("e" * 40, 2e-3), "cpu.json")
    compared = perf_gate(project.repo, "compare", str(gpu_baseline), str(slower))
    assert compared.ret == 0, compared.output
    assert "(advisory)" in compared.output


def test_concurrent_promotes_are_serialized(templates: dict[str, Project], tmp_path: Path) -> None:
    project = copy(templates["promoted"], tmp_path)
    sources = [project.results(make_record(c * 40, 1e-3), f"{c}.json") for c in "ef"]
    processes = [
        subprocess.Popen(
            [str(BIN / "perf-gate"), "baseline", "promote", "--from", str(s)],
            cwd=project.repo,
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for s in sources
    ]
    outputs = [p.communicate(timeout=120)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    history = read_json(project.history)
    commits = [e["commit"][:1] for e in history["entries"]]
    assert sorted(commits[:2]) == ["e", "f"]
    assert commits[2] == "c"  # nothing lost
    winner = read_json(project.baseline)["git"]["commit"][:1]
    assert winner == commits[0]  # the baseline is the newest history entry
    assert file_md5(project.baseline) == read_pointer(pointer_of(project.baseline)).md5
    assert not (project.repo / "baselines" / ".promote").exists()


SLOW_DVC = """#!/bin/sh
# Stands in for dvc: pauses on one subcommand so that the test can kill perf-gate there.
if [ "$1" = "{step}" ]; then
    touch "{marker}"
    sleep 60
fi
exec "{real}" "$@"
"""


@pytest.mark.parametrize("step", ["pull", "add", "push"])
def test_a_promote_killed_midway_leaves_the_old_baseline(
    step: str, templates: dict[str, Project], tmp_path: Path
) -> None:
    project = copy(templates["promoted"], tmp_path)
    before = project.snapshot()
    if step == "pull":  # promote pulls the history first when it is not here
        project.history.unlink()
        before.pop(project.history.name)
    wrapper = tmp_path / "bin"
    wrapper.mkdir()
    marker = tmp_path / "reached"
    (wrapper / "dvc").write_text(SLOW_DVC.format(step=step, marker=marker, real=REAL_DVC))
    (wrapper / "dvc").chmod(0o755)
    source = project.results(make_record("9" * 40, 3e-3))
    process = subprocess.Popen(
        [str(BIN / "perf-gate"), "baseline", "promote", "--from", str(source)],
        cwd=project.repo,
        env=env(PATH=f"{wrapper}{os.pathsep}{os.environ['PATH']}"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), f"promote never reached dvc {step}"
    os.killpg(process.pid, signal.SIGKILL)  # like a cancelled CI job: the whole process group
    process.wait(timeout=30)

    after = {k: v for k, v in project.snapshot().items() if k in before}
    assert after == before  # baseline, history and pointers byte for byte
    status = perf_gate_here(project.repo, "baseline", "status")
    assert status.ret == 0, status.output
    assert "matches its .dvc pointer" in status.output or step == "pull"
    assert "c1c1c1c1c1c1" in status.output
    again = perf_gate(project.repo, "baseline", "promote", "--from", str(source))
    assert again.ret == 0, again.output
    entries = read_json(project.history)["entries"]
    assert [e["commit"][:2] for e in entries] == ["99", "c1"]  # the old promotion kept
    assert not (project.repo / "baselines" / ".promote").exists()


def test_promote_is_refused_off_the_default_branch(
    templates: dict[str, Project], tmp_path: Path
) -> None:
    project = copy(templates["promoted"], tmp_path)
    git(project.repo, "checkout", "-q", "-b", "topic")
    before = project.snapshot()
    source = project.results(make_record("5" * 40, 3e-3))
    ran = perf_gate_here(project.repo, "baseline", "promote", "--from", str(source))
    assert ran.ret == 2
    assert (
        "refusing to promote on branch 'topic': baselines are promoted only from the default "
        "branch 'main'"
    ) in ran.output
    assert "perf-gate explain baseline-branch" in ran.output
    assert project.snapshot() == before
    git(project.repo, "checkout", "-q", "--detach")
    detached = perf_gate_here(project.repo, "baseline", "promote", "--from", str(source))
    assert "on a detached HEAD" in detached.output


def test_without_a_remote_nothing_is_written(templates: dict[str, Project], tmp_path: Path) -> None:
    project = copy(templates["promoted"], tmp_path)
    before = project.snapshot()
    dvc(project.repo, "remote", "remove", "store")
    source = project.results(make_record("6" * 40, 3e-3))
    ran = perf_gate(project.repo, "baseline", "promote", "--from", str(source))
    assert ran.ret == 2
    assert "no DVC remote is configured" in ran.output
    assert len(ran.output.strip().splitlines()) == 1
    assert {k: v for k, v in project.snapshot().items() if k in before} == before
    drop_local(project)
    pulled = perf_gate(project.repo, "baseline", "pull")
    assert pulled.ret == 2
    assert "no DVC remote is configured" in pulled.output


def test_deleted_remote_directory(templates: dict[str, Project], tmp_path: Path) -> None:
    project = copy(templates["promoted"], tmp_path)
    shutil.rmtree(project.remote)
    drop_local(project)
    ran = perf_gate(project.repo, "baseline", "pull")
    assert ran.ret == 2
    assert f"the DVC remote 'store' ({project.remote}) does not exist (deleted or not" in (
        ran.output
    )
    assert not project.baseline.exists()


def test_corrupted_cache_object(templates: dict[str, Project], tmp_path: Path) -> None:
    project = copy(templates["promoted"], tmp_path)
    good = project.baseline.read_bytes()
    pointer = read_pointer(pointer_of(project.baseline))
    cached = project.repo / pointer.cache_object
    cached.chmod(0o644)
    cached.write_bytes(good[: len(good) // 2])  # truncated
    project.baseline.unlink()
    healed = perf_gate(project.repo, "baseline", "pull")  # the remote has a good copy
    assert healed.ret == 0, healed.output
    assert project.baseline.read_bytes() == good

    cached.chmod(0o644)
    cached.write_bytes(good[: len(good) // 2])
    project.baseline.unlink()
    shutil.rmtree(project.remote)  # and now no good copy anywhere
    ran = perf_gate(project.repo, "baseline", "pull")
    assert ran.ret == 2
    assert "checksum mismatch: the cached object" in ran.output
    assert "perf-gate explain baseline-checksum" in ran.output
    assert not project.baseline.exists()  # reported, not used


def test_pointer_to_a_missing_object(templates: dict[str, Project], tmp_path: Path) -> None:
    project = copy(templates["promoted"], tmp_path)
    pointer_file = pointer_of(project.baseline)
    old = read_pointer(pointer_file).md5
    pointer_file.write_text(pointer_file.read_text().replace(old, "deadbeef" * 4))
    project.baseline.unlink()
    ran = perf_gate(project.repo, "baseline", "pull")
    assert ran.ret == 2
    assert f"{project.baseline.name} (md5 {'deadbeef' * 4}): not in the DVC cache" in ran.output
    assert "perf-gate explain dvc-missing-object" in ran.output


def test_pull_never_silently_replaces_local_changes(
    templates: dict[str, Project], tmp_path: Path
) -> None:
    project = copy(templates["promoted"], tmp_path)
    promoted = project.baseline.read_bytes()
    write_record(project.baseline, make_record("7" * 40, 4e-3))  # e.g. a local --save
    local = project.baseline.read_bytes()
    refused = perf_gate(project.repo, "baseline", "pull")
    assert refused.ret == 2
    assert "the local copy differs from" in refused.output
    assert "Pass --force" in refused.output
    assert project.baseline.read_bytes() == local
    status = perf_gate_here(project.repo, "baseline", "status")
    assert "DIFFERS from its .dvc pointer" in status.output
    forced = perf_gate(project.repo, "baseline", "pull", "--force")
    assert forced.ret == 0, forced.output
    assert project.baseline.read_bytes() == promoted
    kept = project.baseline.with_name(project.baseline.name + ".local")
    assert kept.read_bytes() == local
    assert f"kept as baselines/{kept.name}" in forced.output


def test_outside_a_dvc_repository(tmp_path: Path) -> None:
    repo = tmp_path / "plain"
    repo.mkdir()
    (repo / "perf-gate.yaml").write_text("baseline: baselines/main.json\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "commit", "-q", "--allow-empty", "-m", "init")
    write_record(repo / ".perf-gate" / "results.json", make_record("8" * 40, 1e-3))
    ran = perf_gate_here(repo, "baseline", "promote")
    assert ran.ret == 2
    assert "not inside a DVC repository; run `dvc init`" in ran.output
    assert not (repo / "baselines").exists()


ONNX_CONFIG = """
baseline: baselines/main.json
models:
  chain:
    onnx: chain.onnx
    input: {shape: [1, 16], dtype: float32}
    variants: [onnxruntime]
    metrics: [latency]
policy: {min_rounds: 3, max_rounds: 3, thresholds: {latency: 20%}}
measure: {rounds: 3, warmup: 2, min_calls: 20, min_time: 0.02s, probes: 1}
"""


def test_main_promotes_and_a_pull_request_clone_pulls_and_gates(
    templates: dict[str, Project], tmp_path: Path
) -> None:
    project = copy(templates["empty"], tmp_path)
    main = project.repo
    (main / "perf-gate.yaml").write_text(ONNX_CONFIG)
    write_matmul_onnx(main / "chain.onnx")
    git(main, "add", "-A")
    git(main, "commit", "-q", "-m", "model")
    measured = perf_gate(main, "run")
    assert measured.ret == 0, measured.output
    assert read_json(main / ".perf-gate" / "results.json")["files"] == {
        "chain.onnx": file_md5(main / "chain.onnx")
    }
    promoted = perf_gate(main, "baseline", "promote")
    assert promoted.ret == 0, promoted.output
    measured_commit = git(main, "rev-parse", "HEAD")
    project.commit_pointers()

    pr = project.root / "pr"
    git(project.root, "clone", "-q", str(main), str(pr))
    git(pr, "checkout", "-q", "-b", "change")
    write_matmul_onnx(pr / "chain.onnx", width=48)
    git(pr, "commit", "-q", "-am", "wider model")
    unpulled = perf_gate(pr, "run", "--mode", "stored")
    assert unpulled.ret == 2
    assert "tracked by DVC" in unpulled.output
    assert "not pulled; run `perf-gate baseline pull` first" in unpulled.output
    assert perf_gate(pr, "baseline", "pull").ret == 0
    gated = perf_gate(pr, "run", "--mode", "stored")
    assert gated.ret in (0, 1), gated.output
    comparison = read_json(pr / ".perf-gate" / "comparison.json")
    assert comparison["baseline_commit"] == measured_commit
    assert "model or data files changed since the baseline: chain.onnx" in gated.output
    refused = perf_gate_here(pr, "baseline", "promote")
    assert refused.ret == 2
    assert "refusing to promote on branch 'change'" in refused.output
