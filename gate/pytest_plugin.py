"""pytest integration: ``pytest --perf-gate``, the ``perf`` fixture and the ``perf_gate`` marker.

The only module that imports pytest. ``_settings_from`` freezes pytest's options into plain
values at the edge; everything below works without pytest. Flow of a ``--perf-gate`` run:
collection adds one item per model variant from the config; every test runs once as usual
(quick mode); after the test loop, the model variants and the ``perf`` tests are measured in
fresh worker processes, pytest-benchmark results are collected, the gate decides, the table goes
to the terminal summary and the exit status is set (never raised from a summary hook).
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from gate import app, stats
from gate.config import GateConfig, MeasureSettings, find_config, load_config, parse_threshold
from gate.errors import GateError
from gate.measure import VariantUnavailable
from gate.measure.runner import Progress, plan_model, prepare, smoke_test
from gate.model import BenchmarkError, Direction, ExitCode, Metric, Replication, Sample
from gate.perf import Perf
from gate.session import GateRequest, run_gate

MARKER = "perf_gate"
MARKER_KWARGS = ("threshold",)
# pytest-benchmark keeps every round; these are in-process rounds, so a few hundred suffice.
MAX_BENCHMARK_ROUNDS = 1000


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("perf-gate", "performance-regression gate")
    group.addoption(
        "--perf-gate",
        action="store_true",
        default=False,
        help="measure benchmarks, compare with the baseline, fail on regressions",
    )
    group.addoption(
        "--perf-gate-config",
        metavar="FILE",
        default=None,
        help="perf-gate.yaml or pyproject.toml (default: found in the rootdir)",
    )
    group.addoption(
        "--perf-gate-baseline",
        metavar="FILE",
        default=None,
        help="baseline run record (default: the config's 'baseline')",
    )
    group.addoption(
        "--perf-gate-save",
        action="store_true",
        default=False,
        help="save this run as the new baseline",
    )
    group.addoption(
        "--perf-gate-report",
        metavar="DIR",
        default=None,
        help="directory for results.json and comparison.json (default .perf-gate)",
    )
    group.addoption(
        "--perf-gate-mode",
        choices=("auto", "stored", "ab", "duet"),
        default=None,
        help="timing mode (default: the config's policy.timing_mode, auto)",
    )
    group.addoption(
        "--perf-gate-ab",
        metavar="REF",
        default=None,
        help="base revision for ab/duet timing (default: the baseline's commit)",
    )
    group.addoption(
        "--perf-gate-profile",
        action="store_true",
        default=False,
        help="profile base and head of every timed benchmark and show where the time went "
        "(default: only for timing regressions, per the config's policy.diagnose)",
    )
    group.addoption(
        "--perf-gate-worker",
        metavar="FILE",
        default=None,
        help="(internal) measure perf tests in this process and write FILE",
    )
    group.addoption(
        "--perf-gate-worker-profile",
        metavar="DIR",
        default=None,
        help="(internal) with --perf-gate-worker: profile instead of timing, traces to DIR",
    )


@dataclass
class _State:
    """Plugin state for one session, stored on the config."""

    config: GateConfig
    enabled: bool
    worker_out: Path | None
    save: bool
    baseline: Path | None
    mode: str | None = None
    base_ref: str | None = None
    profile: bool = False
    worker_profile: Path | None = None
    perf_nodes: list[str] = field(default_factory=list)
    passed_models: list[str] = field(default_factory=list)
    thresholds: dict[str, str] = field(default_factory=dict)
    worker_results: dict[str, Any] = field(default_factory=dict)
    worker_errors: dict[str, str] = field(default_factory=dict)
    outcome: app.Outcome | None = None
    error: str | None = None
    error_code: int = ExitCode.INTERNAL
    failed: dict[str, str] = field(default_factory=dict)


_STATE = pytest.StashKey[_State]()


def _settings_from(config: pytest.Config) -> _State:
    """The only place that reads pytest options."""
    root = Path(str(config.rootpath))
    invocation = Path(config.invocation_params.dir)
    config_option = config.getoption("--perf-gate-config")
    if config_option:
        gate_config = load_config(invocation / config_option, root=invocation)
    else:
        # The invocation directory first (a project inside a larger repository), then rootdir.
        found = find_config(invocation) or find_config(root)
        gate_config = load_config(found, root=found.parent if found else root)
    report = config.getoption("--perf-gate-report")
    if report:
        gate_config = replace(gate_config, report_dir=(root / report).resolve())
    worker = config.getoption("--perf-gate-worker")
    worker_profile = config.getoption("--perf-gate-worker-profile")
    baseline = config.getoption("--perf-gate-baseline")
    return _State(
        config=gate_config,
        enabled=bool(config.getoption("--perf-gate")) and not worker,
        worker_out=Path(worker) if worker else None,
        save=bool(config.getoption("--perf-gate-save")),
        baseline=(invocation / baseline).resolve() if baseline else None,
        mode=config.getoption("--perf-gate-mode"),
        base_ref=config.getoption("--perf-gate-ab"),
        profile=bool(config.getoption("--perf-gate-profile")),
        worker_profile=Path(worker_profile) if worker and worker_profile else None,
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(threshold='3%'): perf-gate settings for this test's benchmarks"
    )
    wanted = config.getoption("--perf-gate") or config.getoption("--perf-gate-worker")
    if not wanted:
        return
    if config.pluginmanager.hasplugin("xdist") and (config.getoption("numprocesses", None) or 0):
        pytest.exit(
            "perf-gate: error: --perf-gate cannot run under pytest-xdist (-n): parallel workers "
            "distort each other's timings; run it without -n",
            returncode=ExitCode.USAGE,
        )
    try:
        config.stash[_STATE] = _settings_from(config)
    except GateError as exc:
        pytest.exit(exc.one_line(), returncode=exc.exit_code)


def _state(config: pytest.Config) -> _State | None:
    return config.stash.get(_STATE, None)


class ModelItem(pytest.Item):
    """One model variant from the config; running it prepares and smoke-tests the variant."""

    def __init__(self, *, benchmark: str, model: Any, variant: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.benchmark = benchmark
        self.model_spec = model
        self.variant = variant

    def runtest(self) -> None:
        state = _state(self.config)
        assert state is not None
        try:
            plan = prepare(
                plan_model(self.model_spec, self.variant, state.config),
                state.config.report_dir / "cache",
            )
        except VariantUnavailable as exc:
            pytest.skip(exc.message)
        smoke_test(plan)
        state.passed_models.append(self.benchmark)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, GateError):
            return excinfo.value.one_line()
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"perf-gate: {self.benchmark}"


class ModelsFile(pytest.File):
    """The config file as a collector of model-variant items."""

    def collect(self) -> Iterator[ModelItem]:
        state = _state(self.config)
        assert state is not None
        for model in state.config.models:
            for variant, name in zip(model.variants, model.benchmark_names(), strict=True):
                yield ModelItem.from_parent(
                    self, name=name, benchmark=name, model=model, variant=variant
                )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    state = _state(config)
    if state is None:
        return
    for item in items:
        marker = item.get_closest_marker(MARKER)
        if marker is None:
            continue
        unknown = sorted(set(marker.kwargs) - set(MARKER_KWARGS))
        if unknown or marker.args:
            pytest.exit(
                f"perf-gate: error: {item.nodeid}: @pytest.mark.{MARKER} accepts only "
                f"{', '.join(MARKER_KWARGS)} (keyword); got {unknown or list(marker.args)}",
                returncode=ExitCode.USAGE,
            )
        if "threshold" in marker.kwargs:
            try:
                parse_threshold(marker.kwargs["threshold"])
            except ValueError as exc:
                pytest.exit(
                    f"perf-gate: error: {item.nodeid}: threshold: {exc}", returncode=ExitCode.USAGE
                )
            state.thresholds[item.nodeid] = marker.kwargs["threshold"]
    if state.enabled and state.config.models and state.config.path is not None:
        collector = ModelsFile.from_parent(session, path=state.config.path)
        items.extend(collector.collect())


@pytest.fixture
def perf(request: pytest.FixtureRequest) -> Generator[Perf, None, None]:
    """Measure latency, throughput, memory or any number inside a test; see docs/pytest.md."""
    state = _state(request.config)
    # Without --perf-gate the config is not read at all: quick mode needs no settings.
    settings = state.config.measure if state else MeasureSettings()
    measuring = state is not None and state.worker_out is not None
    handle = Perf(
        request.node.nodeid,
        settings,
        measuring=measuring,
        profile_dir=state.worker_profile if state else None,
        root=Path(str(request.config.rootpath)),
    )
    yield handle
    if state is not None:
        if measuring:
            state.worker_results[request.node.nodeid] = handle.to_json()
        elif state.enabled:
            state.perf_nodes.append(request.node.nodeid)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    state = _state(item.config)
    if state is not None and report.failed:
        # Failed tests are not measured; in a worker, the failure is the benchmark's error.
        lines = report.longreprtext.strip().splitlines()
        state.failed[item.nodeid] = lines[-1] if lines else "failed"
    return report


def _benchmark_samples(config: pytest.Config, failed: dict[str, str]) -> list[Sample]:
    """pytest-benchmark's results as in-process samples (advisory verdicts)."""
    session = getattr(config, "_benchmarksession", None)
    samples = []
    for bench in getattr(session, "benchmarks", None) or []:
        data = [float(v) for v in getattr(bench.stats, "data", [])]
        data = stats.thin(data, MAX_BENCHMARK_ROUNDS)
        if data and bench.fullname not in failed:
            samples.append(
                Sample(
                    benchmark=bench.fullname,
                    metric=Metric("latency", "s", Direction.LOWER),
                    values=tuple(data),
                    replication=Replication.IN_PROCESS,
                )
            )
    return samples


def _progress(config: pytest.Config) -> Progress:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or not getattr(reporter, "isatty", False):
        return lambda message: None

    def show(message: str) -> None:
        reporter.write_line(f"perf-gate: {message}")

    return show


def _gate(session: pytest.Session, state: _State) -> None:
    config = session.config
    gate_config = state.config
    thresholds = {n: parse_threshold(t) for n, t in state.thresholds.items()}
    if thresholds:
        policy = replace(
            gate_config.policy, overrides={**gate_config.policy.overrides, **thresholds}
        )
        gate_config = replace(gate_config, policy=policy)
    collected = {i.nodeid.rsplit("::", 1)[-1] for i in session.items if isinstance(i, ModelItem)}
    failed_models = sorted(collected - set(state.passed_models))
    extra = [f"--perf-gate-config={gate_config.path}"] if gate_config.path is not None else []
    request = GateRequest(
        selected=set(state.passed_models),
        perf_nodes=tuple(n for n in dict.fromkeys(state.perf_nodes) if n not in state.failed),
        pytest_root=Path(str(config.rootpath)),
        pytest_args=tuple(extra),
        extra_samples=tuple(_benchmark_samples(config, state.failed)),
        extra_errors=tuple(
            BenchmarkError(
                benchmark=n, message=f"its pytest item failed: {state.failed.get(n, '')}"
            )
            for n in failed_models
        )
        + tuple(
            BenchmarkError(benchmark=n, message=f"the test failed: {state.failed[n]}")
            for n in dict.fromkeys(state.perf_nodes)
            if n in state.failed
        ),
        mode=state.mode,
        base_ref=state.base_ref,
        diagnose="always" if state.profile else None,
        baseline_path=state.baseline,
        save=state.save,
    )
    state.outcome = run_gate(gate_config, request, _progress(config))


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Generator[None, object, object]:
    result = yield
    state = _state(session.config)
    if state is None or not state.enabled or session.shouldfail or session.shouldstop:
        return result
    if session.config.option.collectonly:
        return result
    try:
        _gate(session, state)
    except GateError as exc:
        state.error = exc.one_line()
        state.error_code = exc.exit_code
    except Exception:  # a bug in perf-gate: report it, never raise from the session hooks
        state.error = "perf-gate: internal error (please report it):\n" + traceback.format_exc()
        state.error_code = ExitCode.INTERNAL
    return result


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = _state(session.config)
    if state is None:
        return
    if state.worker_out is not None:
        state.worker_out.write_text(
            json.dumps({"results": state.worker_results, "errors": state.failed}), encoding="utf-8"
        )
        return
    if not state.enabled or exitstatus not in (0, 5):
        return
    if state.error is not None:
        session.exitstatus = state.error_code
    elif state.outcome is not None:
        session.exitstatus = int(state.outcome.exit_code)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = _state(config)
    if state is None or not state.enabled:
        return
    terminalreporter.section("perf-gate")
    if state.error is not None:
        terminalreporter.write_line(state.error)
    elif state.outcome is not None:
        for line in state.outcome.table.splitlines():
            terminalreporter.write_line(line)
        files = ", ".join(str(p) for p in state.outcome.files)
        terminalreporter.write_line(f"Wrote {files}")
    else:
        terminalreporter.write_line("perf-gate: not run (tests failed or the run was stopped)")
