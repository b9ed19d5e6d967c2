"""gate.integrations.github.actions and perf-gate summary: workflow commands, outputs, event
files, job summary."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from gate.core.types import Direction, GitInfo, Metric, RunRecord, Sample
from gate.errors import BaselineError, ConfigError
from gate.integrations.cli import main as cli
from gate.integrations.github.actions import (
    ActionsEnv,
    annotation,
    escape_property,
    read_event,
    regression_annotations,
    write_outputs,
)
from gate.integrations.github.publish import ReportInput, publish_summary
from gate.store.records import write_record

EVENTS = Path(__file__).resolve().parents[1] / "fixtures" / "github" / "events"


def item(benchmark: str, verdict: str, **extra: Any) -> dict[str, Any]:
    return {
        "benchmark": benchmark,
        "metric": "latency",
        "unit": "s",
        "verdict": verdict,
        "baseline": 0.001,
        "current": 0.0012,
        "relative_change": 0.2,
        "note": "",
        **extra,
    }


def report(comparisons: list[dict[str, Any]], exit_code: int = 1) -> dict[str, Any]:
    return {"format": 1, "exit_code": exit_code, "has_baseline": True, "comparisons": comparisons}


def test_annotations_escape_data_and_properties() -> None:
    line = annotation("error", "50% slower\nsecond line\r", title="a:b,c%")
    assert line == "::error title=a%3Ab%2Cc%25::50%25 slower%0Asecond line%0D"
    assert escape_property("x::y") == "x%3A%3Ay"


def test_a_benchmark_name_cannot_start_a_workflow_command_of_its_own() -> None:
    hostile = "m\n::add-mask::x\n::stop-commands::t"
    (line,) = regression_annotations(report([item(hostile, "regression")]))
    assert "\n" not in line
    assert line.startswith("::error title=perf-gate regression%3A m%0A%3A%3Aadd-mask")
    assert "::m%0A::add-mask::x%0A::stop-commands::t latency: regression +20.0%" in line


def test_at_most_ten_annotations_then_a_notice() -> None:
    comparisons = [item(f"m{i}", "regression") for i in range(12)]
    comparisons += [item("a", "regression", advisory=True), item("u", "unchanged")]
    comparisons += [item("b", "over-budget", relative_change=None, note="budget 2ms")]
    lines = regression_annotations(report(comparisons))
    assert len(lines) == 11
    assert all(line.startswith("::error title=perf-gate regression") for line in lines[:10])
    assert lines[10] == "::notice::3 more failing results in the job summary"
    (budget,) = regression_annotations(report([comparisons[-1]]))
    assert budget.endswith("::b latency: over-budget (budget 2ms)")


def test_outputs_use_a_random_delimiter_that_no_value_contains(tmp_path: Path) -> None:
    path = tmp_path / "output"
    path.write_text("earlier=1\n", encoding="utf-8")
    marks = iter(["EOF", "EOF", "D1", "D2"])
    write_outputs(path, {"status": "failed\nEOF", "report-path": "x"}, lambda: next(marks))
    assert path.read_text(encoding="utf-8") == (
        "earlier=1\nstatus<<D1\nfailed\nEOF\nD1\nreport-path<<D2\nx\nD2\n"
    )
    write_outputs(path, {"a": "1"})
    assert "a<<ghadelimiter_" in path.read_text(encoding="utf-8")


def test_events_give_the_pull_request_and_whether_it_is_a_fork(tmp_path: Path) -> None:
    opened = read_event(EVENTS / "pull_request.opened.json")
    fork = read_event(EVENTS / "pull_request.synchronize.fork.json")
    assert opened is not None
    assert fork is not None
    assert (opened.number, opened.repository, opened.fork) == (2, "Codertocat/Hello-World", False)
    assert (fork.number, fork.fork) == (2, True)
    push = tmp_path / "push.json"
    push.write_text(json.dumps({"ref": "refs/heads/main"}), encoding="utf-8")
    assert read_event(push) is None
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken\.json: cannot read the event file"):
        read_event(broken)


def test_environment_and_run_url() -> None:
    env = ActionsEnv.from_environ(
        {
            "GITHUB_ACTIONS": "true",
            "GITHUB_SERVER_URL": "https://ghe.example.com/",
            "GITHUB_REPOSITORY": "o/r",
            "GITHUB_RUN_ID": "7",
            "GITHUB_STEP_SUMMARY": "/tmp/s",
        }
    )
    assert env.in_actions
    assert env.run_url == "https://ghe.example.com/o/r/actions/runs/7"
    assert env.step_summary == Path("/tmp/s")
    assert ActionsEnv.from_environ({}).run_url is None


def source(tmp_path: Path, data: dict[str, Any]) -> ReportInput:
    path = tmp_path / "comparison.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return ReportInput(comparison=path, report_dir=tmp_path / ".perf-gate")


def test_summary_appends_the_same_verdict_annotates_and_sets_outputs(tmp_path: Path) -> None:
    data = report([item("m[torch]", "regression"), item("n", "unchanged")])
    summary = tmp_path / "step_summary"
    summary.write_text("earlier step\n", encoding="utf-8")
    env = ActionsEnv(in_actions=True, step_summary=summary, output=tmp_path / "output")
    stdout = io.StringIO()
    outcome = publish_summary(source(tmp_path, data), env, stdout)
    text = summary.read_text(encoding="utf-8")
    assert text.startswith(
        "earlier step\n### ❌ perf-gate: m\\[torch\\] latency +20.0% · 1 regression\n"
    )
    assert outcome.path.read_text(encoding="utf-8") == text.removeprefix("earlier step\n")
    assert stdout.getvalue().startswith("::error title=perf-gate regression%3A m[torch] latency::")
    outputs = (tmp_path / "output").read_text(encoding="utf-8")
    assert "status<<" in outputs
    assert "\nfailed\n" in outputs
    assert "regressions<<" in outputs
    assert "\n1\n" in outputs
    assert f"\n{outcome.path}\n" in outputs


def test_summary_outside_actions_only_writes_the_file(tmp_path: Path) -> None:
    stdout = io.StringIO()
    outcome = publish_summary(source(tmp_path, report([], exit_code=0)), ActionsEnv(), stdout)
    assert stdout.getvalue() == ""
    assert not outcome.appended
    assert outcome.outputs["status"] == "passed"
    assert outcome.path.read_text(encoding="utf-8").startswith("### ✅ perf-gate: no regression\n")


def test_a_missing_or_foreign_comparison_is_one_clear_error(tmp_path: Path) -> None:
    missing = ReportInput(comparison=tmp_path / "nope.json", report_dir=tmp_path)
    with pytest.raises(BaselineError, match=r"nope\.json: no such comparison report; run the gate"):
        publish_summary(missing, ActionsEnv(), io.StringIO())
    with pytest.raises(BaselineError, match="format 2 is not supported"):
        publish_summary(source(tmp_path, {"format": 2}), ActionsEnv(), io.StringIO())


def test_cli_summary_and_compare_markdown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".perf-gate").mkdir()
    data = report([item("m[torch]", "regression")])
    (tmp_path / ".perf-gate" / "comparison.json").write_text(json.dumps(data), encoding="utf-8")
    history = tmp_path / "history.json"
    points = [
        {"benchmark": "m[torch]", "metric": "latency", "commit": c * 40, "value": 0.001}
        for c in "abc"
    ]
    history.write_text(json.dumps(points), encoding="utf-8")
    assert cli.main(["summary", "--history", str(history), "--name", "cpu"]) == 0
    written = (tmp_path / ".perf-gate" / "summary.md").read_text(encoding="utf-8")
    assert written.startswith("### ❌ perf-gate cpu: m\\[torch\\] latency +20.0% · 1 regression\n")
    assert "```mermaid" in written
    assert written.rstrip().endswith("<!-- perf-gate:comment name=cpu -->")
    assert cli.main(["summary", "--name", "bad name"]) == 2
    assert "--name 'bad name'" in capsys.readouterr().err
    history.write_text("[{}]", encoding="utf-8")
    assert cli.main(["summary", "--history", str(history)]) == 2
    assert (
        "history.json: points[0].benchmark: expected a string (perf-gate explain history-file)"
        in (capsys.readouterr().err)
    )


def test_compare_format_markdown_renders_a_real_decision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    latency = Metric("latency", "s", Direction.LOWER)
    environment = {"os": "Linux", "key": "abc123def456"}

    def record(path: Path, values: tuple[float, ...], commit: str) -> Path:
        sample = Sample(benchmark="m[torch]", metric=latency, values=values)
        write_record(
            path, RunRecord(samples=(sample,), environment=environment, git=GitInfo(commit=commit))
        )
        return path

    base = record(tmp_path / "base.json", (0.0010, 0.00101, 0.00099, 0.001, 0.00102), "a" * 40)
    head = record(tmp_path / "head.json", (0.0020, 0.00201, 0.00199, 0.002, 0.00202), "b" * 40)
    code = cli.main(["compare", str(base), str(head), "--format", "markdown"])
    text = capsys.readouterr().out
    assert code == 1
    assert text.startswith("### ❌ perf-gate: m\\[torch\\] latency +99.6% · 1 regression\n")
    assert (
        "| 🔴\u00a0regression | m\\[torch\\] | latency "
        "| +99.6%<br><sub>[+95.4%,\u00a0+103.9%]</sub> "
        "| 2\u00a0ms<br><sub>from\u00a01\u00a0ms</sub> | stored<br><sub>mde\u00a0" in text
    )
    assert f"pytest --perf-gate --perf-gate-ab {'a' * 40}" in text
    assert text.rstrip().endswith("<!-- perf-gate:comment name=main -->")


def test_every_slug_of_the_publishing_modules_is_documented() -> None:
    root = Path(__file__).resolve().parents[2]
    headings = set(re.findall(r"^## (\S+)$", (root / "gate/errors.md").read_text(), flags=re.M))
    modules = [
        "gate/integrations/github/client.py",
        "gate/integrations/github/actions.py",
        "gate/integrations/github/publish.py",
        "gate/report/markdown.py",
    ]
    modules += ["gate/report/trend.py"]
    slugs = {
        slug
        for module in modules
        for slug in re.findall(r'(?:slug=|default_slug = )"([a-z-]+)"', (root / module).read_text())
    }
    assert len(slugs) >= 10
    assert slugs - headings == set()
