"""The golden comments as GitHub renders them: cmark-gfm (``cmarkgfm``, GitHub's own parser)
with GitHub's extensions, raw HTML kept as in a comment. What a reader sees first: the heading
holds the verdict, the gate's name and the worst change; every results table starts with the
verdict; no ``<summary>`` shows a backslash. ``bench/render_comment.py`` takes the screenshots.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

cmarkgfm = pytest.importorskip("cmarkgfm", reason="needs cmarkgfm (the dev extra)")
from cmarkgfm.cmark import Options  # noqa: E402

GOLD = Path(__file__).resolve().parents[1] / "gold"
COMMENTS = sorted(GOLD.glob("comment-*.md"))
VERDICT_ICONS = ("✅", "❌", "⚠️", "🆕")
# the worst change each case's heading names, as the reader sees it
WORST = {
    "comment-regressions": "digits-mlp[torch] latency +28.9%",
    "comment-accuracy-parity": "digits-mlp[onnxruntime-int8] accuracy -1.94 pt",
    "comment-over-budget": "digits-mlp[onnxruntime] latency.p99 3.1 ms over budget 2ms",
    "comment-diagnosis": "digits-mlp[torch] latency +28.9%",
    "comment-digest-1000": "model-0970[onnxruntime-int8] latency +19.7%",
    "comment-hostile-names": "latency|<b>x</b> +100.0%",
    "comment-all-unchanged": "no regression",
    "comment-no-baseline": "no baseline yet",
    "comment-environment-mismatch": "baseline from another environment",
    "comment-dependency-upgrade": "digits-mlp[onnxruntime] latency +29.7%",
}


def github_html(markdown: str) -> str:
    options = Options.CMARK_OPT_UNSAFE | Options.CMARK_OPT_HARDBREAKS
    return str(
        cmarkgfm.markdown_to_html_with_extensions(
            markdown,
            options=options,
            extensions=["table", "strikethrough", "autolink", "tagfilter"],
        )
    )


def text_of(fragment: str) -> str:
    """What a reader sees of an HTML fragment: no tags, entities decoded, no zero-width space."""
    return html.unescape(re.sub(r"<[^>]+>", "", fragment)).replace("\u200b", "").strip()


def test_every_golden_comment_is_checked() -> None:
    assert {p.stem for p in COMMENTS} == set(WORST)


@pytest.mark.parametrize("path", COMMENTS, ids=lambda p: p.stem)
def test_the_first_heading_holds_the_verdict_the_gate_and_the_worst_change(path: Path) -> None:
    rendered = github_html(path.read_text(encoding="utf-8"))
    first = re.search(r"<h3>(.*?)</h3>", rendered, flags=re.S)
    assert first is not None
    assert rendered.index("<h3>") == rendered.index("<h")  # nothing before it
    heading = text_of(first.group(1))
    assert heading.startswith(VERDICT_ICONS)
    assert " perf-gate (cpu-x86_64): " in heading
    assert WORST[path.stem] in heading


@pytest.mark.parametrize("path", COMMENTS, ids=lambda p: p.stem)
def test_no_summary_shows_a_backslash(path: Path) -> None:
    rendered = github_html(path.read_text(encoding="utf-8"))
    summaries = re.findall(r"<summary>(.*?)</summary>", rendered, flags=re.S)
    assert summaries
    for summary in summaries:
        assert "\\" not in html.unescape(summary), summary
        assert "<" not in summary, summary  # names as entities: no tag, no </details>


@pytest.mark.parametrize("path", COMMENTS, ids=lambda p: p.stem)
def test_the_verdict_is_the_first_cell_of_every_row(path: Path) -> None:
    rendered = github_html(path.read_text(encoding="utf-8"))
    checked = 0
    for table in re.findall(r"<table>.*?</table>", rendered, flags=re.S):
        header = [text_of(h) for h in re.findall(r"<th[^>]*>(.*?)</th>", table, flags=re.S)]
        if not any("verdict" in h for h in header):
            continue  # environment, budget, operator and trend tables hold no verdict
        assert "verdict" in header[0], header
        for row in re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1], flags=re.S):
            cells = re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)
            assert cells
            assert cells[0] == "–" or text_of(cells[0])[0] in "🔴🟠❔🟡➖🆕🟢⚪⚠✅❓", cells[0]
            checked += 1
    assert checked or "verdict" not in path.read_text(encoding="utf-8")
