"""``perf-gate explain``: every slug an error can carry has a guide, and the command prints it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gate.errors import BaselineError, ConfigError
from gate.integrations.cli import main as cli
from gate.integrations.cli.explain import explain, guide, sections

ROOT = Path(__file__).resolve().parents[2]


def slugs_in_code() -> set[str]:
    found: set[str] = set()
    for module in (ROOT / "gate").rglob("*.py"):
        text = module.read_text(encoding="utf-8")
        found.update(re.findall(r'(?:slug=|default_slug = )"([a-z0-9-]+)"', text))
    return found


def test_every_slug_in_the_code_has_a_guide() -> None:
    slugs = slugs_in_code()
    assert len(slugs) >= 40
    missing = slugs - set(sections(guide()))
    assert not missing, f"add a '## <slug>' section to gate/errors.md for: {sorted(missing)}"


def test_the_guide_is_read_from_the_package() -> None:
    assert guide() == (ROOT / "gate" / "errors.md").read_text(encoding="utf-8")


def test_a_section_runs_to_the_next_heading_and_keeps_code_comments() -> None:
    text = "# Errors\n\nintro\n\n## one\nfirst\n```sh\n# a comment\n```\n"
    text += "## In Groups\n## two\nsecond\n"
    assert sections(text) == {
        "one": "## one\nfirst\n```sh\n# a comment\n```",
        "two": "## two\nsecond",
    }


def test_headings_in_a_row_share_the_body_below_them() -> None:
    text = "## missing-a\n## missing-b\nInstall the extra.\n\n## next\nother\n"
    assert sections(text) == {
        "missing-a": "## missing-a\nInstall the extra.",
        "missing-b": "## missing-b\nInstall the extra.",
        "next": "## next\nother",
    }


def test_explain_prints_the_section(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["explain", "baseline-corrupt"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("## baseline-corrupt\n")
    assert "perf-gate run --save" in out
    assert "## baseline-format" not in out  # the next section is not part of it


def test_explain_without_a_slug_lists_them(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["explain"]) == 0
    listed = capsys.readouterr().out.split()
    assert {"config", "baseline-corrupt", "github-auth", "dvc-missing"} <= set(listed)


def test_a_misspelt_slug_is_one_line_with_the_closest_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["explain", "baseline-corupt"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no error guide named 'baseline-corupt'; did you mean 'baseline-corrupt'?" in err
    with pytest.raises(ConfigError, match="'perf-gate explain' lists them all"):
        explain("zzzz")


def test_an_error_line_names_the_command_that_explains_it() -> None:
    line = BaselineError("baselines/main.json: truncated", slug="baseline-corrupt").one_line()
    assert line == (
        "perf-gate: error: baselines/main.json: truncated (perf-gate explain baseline-corrupt)"
    )
    slug = line.rsplit("explain ", 1)[1].rstrip(")")
    assert slug in sections(guide())
