"""pytest integration: ``pytest --perf-gate``, the ``perf`` fixture and the ``perf_gate`` marker.

The only module that imports pytest. ``_settings_from`` freezes pytest's options into plain
values at the edge; everything below works without pytest. Flow of a ``--perf-gate`` run:
what cannot run (pytest-xdist, a path option pytest misreads, a bad config) is refused before
the session in one line; collection adds one item per model variant from the config and checks
the ``perf_gate`` markers of the selected tests; every test runs once as usual (quick mode);
after the test loop, the model variants and the ``perf`` tests are measured in fresh worker
processes, pytest-benchmark results are collected, the gate decides, the table goes to the
terminal summary and the exit status is set (never raised from a summary hook).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import traceback
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from gate import pipeline as app
from gate.config import GateConfig, MeasureSettings, find_config, load_config, parse_threshold
from gate.config.policy import base_env_option
from gate.core.types import REQUESTED_MODES, BenchmarkError, ExitCode, RequestedMode
from gate.errors import ConfigError, GateError, MeasurementError
from gate.integrations.pytest import benchmark_fixture
from gate.integrations.pytest.options import misread_path_option, worker_args
from gate.integrations.pytest.perf import Perf
from gate.measure import processes
from gate.measure.base_imports import check_worker
from gate.measure.custom import BENCHMARK_ROUND_TIME, PYTEST_BENCHMARK_MAX_TIME
from gate.measure.runner import Prepared, Progress, prepare_all
from gate.pipeline import GateRequest, PytestPart, run_gate

MARKER = "perf_gate"
MARKER_KWARGS = ("threshold",)
# A failure becomes one line of a benchmark's error; a long assertion diff is cut here.
MAX_FAILURE_CHARS = 500


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
        choices=REQUESTED_MODES,
        default=None,
        help="timing mode (default: the config's policy.timing_mode, auto)",
    )
    group.addoption(
        "--perf-gate-base-env",
        metavar="auto|current|PATH",
        default=None,
        help="the base revision's Python in paired runs: auto (its own environment, built with "
        "uv when its dependencies differ), current, or an interpreter or venv",
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
    group.addoption(
        "--perf-gate-worker-calls",
        metavar="FILE",
        default=None,
        help="(internal) with --perf-gate-worker: the calls of benchmark tests, by node id",
    )


@dataclass
class _State:
    """Plugin state for one session, stored on the config."""

    config: GateConfig
    enabled: bool
    worker_out: Path | None
    save: bool
    baseline: Path | None
    mode: RequestedMode | None = None
    base_ref: str | None = None
    base_env: str | None = None
    profile: bool = False
    worker_profile: Path | None = None
    worker_args: tuple[str, ...] = ()
    collect_only: bool = False
    perf_nodes: list[str] = field(default_factory=list)
    # tests that used pytest-benchmark's ``benchmark`` fixture: measured in worker rounds too
    benchmark_nodes: list[str] = field(default_factory=list)
    # the user's --benchmark-max-time, or None where left at its default (the gate sizes it)
    benchmark_time: float | None = None
    worker_calls: dict[str, list[int]] = field(default_factory=dict)  # node id -> calls
    collected: list[str] = field(default_factory=list)  # a worker's collected node ids
    passed_models: list[str] = field(default_factory=list)
    prepared: Prepared | None = None  # the model items' variants, prepared in workers
    skipped_models: list[str] = field(default_factory=list)  # variant unavailable here
    config_mistake: bool = False  # a model item found a reference the config cannot use
    thresholds: dict[str, str] = field(default_factory=dict)
    worker_results: dict[str, Any] = field(default_factory=dict)
    worker_errors: dict[str, str] = field(default_factory=dict)
    outcome: app.Outcome | None = None
    error: str | None = None
    error_code: int = ExitCode.INTERNAL
    failed: dict[str, str] = field(default_factory=dict)


_STATE = pytest.StashKey[_State]()


def _settings_from(config: pytest.Config) -> _State:
    """The only place that reads pytest options. Raises GateError for a bad config."""
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
    calls = config.getoption("--perf-gate-worker-calls")
    max_time = getattr(config.option, "benchmark_max_time", None)
    return _State(
        config=gate_config,
        enabled=bool(config.getoption("--perf-gate")) and not worker,
        worker_out=Path(worker) if worker else None,
        save=bool(config.getoption("--perf-gate-save")),
        baseline=(invocation / baseline).resolve() if baseline else None,
        mode=config.getoption("--perf-gate-mode"),
        base_ref=config.getoption("--perf-gate-ab"),
        base_env=base_env_option(config.getoption("--perf-gate-base-env")),
        profile=bool(config.getoption("--perf-gate-profile")),
        worker_profile=Path(worker_profile) if worker and worker_profile else None,
        worker_args=tuple(_worker_args(config, gate_config)),
        collect_only=bool(config.getoption("collectonly")),
        benchmark_time=_user_max_time(max_time),
        worker_calls=json.loads(Path(calls).read_text(encoding="utf-8")) if calls else {},
    )


def _user_max_time(value: object) -> float | None:
    """pytest-benchmark's --benchmark-max-time (a decimal string) where the user set one, None
    where it is the default (or pytest-benchmark is not installed)."""
    try:
        seconds = float(str(value))
    except ValueError:
        return None
    return None if value is None or seconds == PYTEST_BENCHMARK_MAX_TIME else seconds


def _worker_args(config: pytest.Config, gate_config: GateConfig) -> list[str]:
    """The pytest options of a worker round (see ``pytest_options.worker_args``)."""
    return worker_args(
        config.invocation_params.args,
        invocation=config.invocation_params.dir,
        root=Path(str(config.rootpath)),
        config_path=gate_config.path,
        report_dir=gate_config.report_dir,
        has_plugin=config.pluginmanager.hasplugin,
    )


def _misread_path_option(config: pytest.Config) -> str | None:
    """The one-line refusal for a perf-gate path option written with a space, or None."""
    env = shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))
    problem = misread_path_option(config.invocation_params.args, env)
    return _usage_line(problem) if problem else None


def _usage_line(message: str) -> str:
    return f"perf-gate: error: {message}"


def _start(config: pytest.Config) -> str | None:
    """Read the settings into the config's stash; returns the refusal line for what cannot
    run (pytest-xdist, a misread path option, a bad config), or None."""
    numprocesses = config.getoption("numprocesses", None) or 0
    if config.pluginmanager.hasplugin("xdist") and numprocesses:
        return _usage_line(
            "--perf-gate cannot run under pytest-xdist (-n): parallel workers distort each "
            "other's timings; run it without -n (or with -n 0)"
        )
    refusal = _misread_path_option(config)
    if refusal is not None:
        return refusal
    try:
        state = _settings_from(config)
        if state.worker_out is not None:  # a round's process: the parent's memory limit
            processes.apply_memory_limit()
        if state.enabled and not state.collect_only:
            app.check_report_dir(state.config)  # the model items write their cache there first
        config.stash[_STATE] = state
    except GateError as exc:
        return exc.one_line()
    return None


def _wanted(config: pytest.Config) -> bool:
    return bool(config.getoption("--perf-gate") or config.getoption("--perf-gate-worker"))


def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """Refuse what cannot run before pytest starts its session, as one line on stderr and
    exit 2 (``pytest.exit`` would print pytest's ``Exit:`` prefix); None lets pytest go on."""
    if config.getoption("help", False) or config.getoption("version", 0) or not _wanted(config):
        return None
    refusal = _start(config)
    if refusal is None:
        return None
    sys.stderr.write(refusal + "\n")
    return int(ExitCode.USAGE)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(threshold='3%'): perf-gate settings for this test's benchmarks"
    )
    if _wanted(config) and _state(config) is None:
        # Only when pytest_cmdline_main did not run (a pytest embedding that skips it).
        refusal = _start(config)
        if refusal is not None:
            pytest.exit(refusal, returncode=ExitCode.USAGE)


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
            prepared = _prepared(self.session, state)
        except ConfigError as error:
            # The config names something that does not exist: a usage error (exit 2) that no
            # other benchmark's result would make useful, so the session stops here.
            state.error, state.error_code = error.one_line(), ExitCode.USAGE
            state.config_mistake = True
            self.session.shouldstop = "perf-gate: the config names a callable that cannot be used"
            raise
        skipped = f"{self.benchmark} skipped: "
        for line in prepared.skipped:
            if line.startswith(skipped):
                state.skipped_models.append(self.benchmark)
                pytest.skip(line[len(skipped) :])
        for failure in prepared.errors:
            if failure.benchmark == self.benchmark:
                raise MeasurementError(f"{self.benchmark}: {failure.message}", slug="worker")
        state.passed_models.append(self.benchmark)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, GateError):
            return excinfo.value.one_line()
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"perf-gate: {self.benchmark}"


def _prepared(session: pytest.Session, state: _State) -> Prepared:
    """The selected model variants, prepared and each called once per batch size in worker
    processes (the user's code never runs in pytest's process), once per session: the first
    model item to run does it for all. Raises ConfigError for a reference that cannot be
    resolved."""
    if state.prepared is None:
        selected = {i.benchmark for i in session.items if isinstance(i, ModelItem)}
        state.prepared = prepare_all(state.config, selected, _progress(session.config), smoke=True)
    return state.prepared


class ModelsFile(pytest.File):
    """The config file as a collector of model-variant items."""

    def collect(self) -> Iterator[ModelItem]:
        state = _state(self.config)
        assert state is not None
        for model in state.config.models:
            for variant, name in zip(model.plan_variants, model.benchmark_names(), strict=True):
                yield ModelItem.from_parent(
                    self, name=name, benchmark=name, model=model, variant=variant
                )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """With --perf-gate, the config's model variants join the collection: before -k and
    --deselect see the items, and reported like collected files (pytest's count has them)."""
    state = _state(config)
    if state is None or not state.enabled or state.config.path is None:
        return
    if state.config.models and _models_asked_for(config, state.config.path):
        items.extend(session.genitems(ModelsFile.from_parent(session, path=state.config.path)))


def _models_asked_for(config: pytest.Config, path: Path) -> bool:
    """Whether the command line selects the config's models: it names no paths (pytest's
    ``testpaths`` or the invocation folder), or one of them is a folder that holds the
    config. ``pytest --perf-gate tests/test_x.py`` runs that file only, like any
    pytest run given a file."""
    if config.args_source is not pytest.Config.ArgsSource.ARGS:
        return True
    invocation = Path(config.invocation_params.dir)
    target = path.resolve()
    for arg in config.args:
        given = (invocation / arg.split("::")[0]).resolve()
        if given == target or target.is_relative_to(given):
            return True
    return False


@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Check the ``perf_gate`` markers of the selected tests, with or without --perf-gate.

    A bad marker is a collection error of its test, reported as one line; pytest then stops
    with exit 2 ("Interrupted: 1 error during collection") before any test runs."""
    state = _state(session.config)
    if state is not None and state.worker_out is not None:
        state.collected = [item.nodeid for item in session.items]
    bad: list[pytest.Item] = []
    for item in session.items:
        problems = [p for mark in item.iter_markers(MARKER) if (p := _marker_problem(mark))]
        if problems:
            bad.append(item)
            line = _usage_line(f"{item.nodeid}: {problems[0]}")
            item.ihook.pytest_collectreport(
                report=pytest.CollectReport(item.nodeid, "failed", line, [])
            )
            continue
        marker = item.get_closest_marker(MARKER)
        if state is not None and marker is not None and "threshold" in marker.kwargs:
            state.thresholds[item.nodeid] = marker.kwargs["threshold"]
    if bad:
        session.items[:] = [item for item in session.items if item not in bad]


def _marker_problem(mark: pytest.Mark) -> str | None:
    """What is wrong with one ``@pytest.mark.perf_gate(...)``, with the fix; None if valid."""
    example = f'@pytest.mark.{MARKER}(threshold="5%")'
    if mark.args:
        return (
            f"@pytest.mark.{MARKER}({mark.args[0]!r}): the marker takes no positional "
            f"argument; write @pytest.mark.{MARKER}(threshold={mark.args[0]!r})"
        )
    for name, value in mark.kwargs.items():
        if name not in MARKER_KWARGS:
            return (
                f"@pytest.mark.{MARKER}({name}={value!r}): unknown argument {name!r}; the "
                f"marker takes only {', '.join(MARKER_KWARGS)}, e.g. {example}"
            )
    if "threshold" in mark.kwargs:
        value = mark.kwargs["threshold"]
        try:
            parse_threshold(value)
        except ValueError as exc:
            return (
                f"@pytest.mark.{MARKER}(threshold={value!r}): {exc}; write e.g. "
                f'threshold="5%" or threshold="2ms"'
            )
    return None


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
            state.worker_results.setdefault(request.node.nodeid, {}).update(handle.to_json())
        elif state.enabled:
            state.perf_nodes.append(request.node.nodeid)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """Before a ``benchmark`` test runs: in a worker, the calls its first worker calibrated;
    in the parent of a --perf-gate run, a short time (it only has to pass there)."""
    state = _state(item.config)
    fixture = benchmark_fixture.fixture_of(item) if state is not None else None
    if state is not None and fixture is not None:
        if state.worker_out is not None and item.nodeid in state.worker_calls:
            benchmark_fixture.fix_calls(fixture, *state.worker_calls[item.nodeid])
        elif state.enabled:
            benchmark_fixture.shorten(fixture, BENCHMARK_ROUND_TIME)
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    state = _state(item.config)
    if state is not None and report.when == "call" and report.passed:
        timed = benchmark_fixture.timings(item)
        if timed is not None and state.worker_out is not None:
            state.worker_results.setdefault(item.nodeid, {})["latency"] = timed
        elif timed is not None and state.enabled:
            state.benchmark_nodes.append(item.nodeid)
    if state is not None and report.failed:
        # Failed tests are not measured; in a worker, the failure is the benchmark's error.
        # The first failing phase is the cause (a teardown error after it is a consequence).
        root = Path(str(item.config.rootpath))
        state.failed.setdefault(item.nodeid, _failure_line(report, root))
    return report


def _failure_line(report: pytest.TestReport, root: Path) -> str:
    """Where and why a test failed, in one line: pytest's crash line (``path:line: message``)
    when the report has one, else the error lines and the location that end the report (a
    missing fixture, ``pytest.fail(pytrace=False)``)."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        path = Path(crash.path)
        where = path.relative_to(root) if path.is_relative_to(root) else path
        text = f"{where}:{crash.lineno}: {crash.message}"
    else:
        lines = [line for line in report.longreprtext.splitlines() if line.strip()]
        errors = [line[1:].strip() for line in lines if line.startswith("E ")]
        if not lines:
            text = "failed"
        elif errors and not lines[-1].startswith("E "):
            text = f"{lines[-1].strip()}: {' '.join(errors)}"
        else:
            text = " ".join(errors) or lines[-1]
    text = " ".join(text.split())
    if len(text) > MAX_FAILURE_CHARS:
        text = text[: MAX_FAILURE_CHARS - 3] + "..."
    return text


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
    model_items = {i.benchmark: i.nodeid for i in session.items if isinstance(i, ModelItem)}
    failed_models = sorted(set(model_items) - set(state.passed_models) - set(state.skipped_models))
    prepared = state.prepared or Prepared([], [], [])
    why = {e.benchmark: e.message for e in prepared.errors}
    request = GateRequest(
        selected=set(state.passed_models),
        prepared=Prepared([p for p in prepared.plans if p.name in state.passed_models], [], []),
        pytest=PytestPart(
            root=Path(str(config.rootpath)),
            nodes=tuple(
                n
                for n in dict.fromkeys([*state.perf_nodes, *state.benchmark_nodes])
                if n not in state.failed
            ),
            args=state.worker_args,
            samples=tuple(
                benchmark_fixture.in_process_samples(
                    getattr(config, "_benchmarksession", None), state.failed
                )
            ),
            benchmark_nodes=tuple(dict.fromkeys(state.benchmark_nodes)),
            benchmark_time=state.benchmark_time,
            errors=tuple(
                BenchmarkError(
                    benchmark=n,
                    message=why.get(n)
                    or "its pytest item failed: "
                    + state.failed.get(model_items[n], "see the test report above"),
                )
                for n in failed_models
            )
            + tuple(
                BenchmarkError(benchmark=n, message=f"the test failed: {state.failed[n]}")
                for n in dict.fromkeys(state.perf_nodes)
                if n in state.failed
            ),
        ),
        mode=state.mode,
        base_ref=state.base_ref,
        base_env=state.base_env,
        diagnose="always" if state.profile else None,
        baseline_path=state.baseline,
        save=state.save,
    )
    state.outcome = run_gate(gate_config, request, _progress(config))


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Generator[None, object, object]:
    result = yield
    state = _state(session.config)
    if state is None or not state.enabled or state.collect_only:
        return result
    if session.shouldfail or session.shouldstop:
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
        document: dict[str, Any] = {
            "results": state.worker_results,
            "errors": state.failed,
            "collected": state.collected,
        }
        foreign = check_worker()  # in the base revision's worktree: did head code run?
        if foreign is not None:
            document["base_imports"] = foreign
        state.worker_out.write_text(json.dumps(document), encoding="utf-8")
        return
    if state.config_mistake:
        session.exitstatus = ExitCode.USAGE  # the config names what cannot be used: exit 2
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
    elif state.collect_only:
        terminalreporter.write_line("perf-gate: collect-only, nothing measured")
    else:
        terminalreporter.write_line(
            "perf-gate: not run (the session stopped early: collection errors, -x/--maxfail "
            "or an interrupt)"
        )
