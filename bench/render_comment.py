"""Screenshots of the pull-request comment as GitHub renders it, at the width of a PR timeline.

Each golden comment (``tests/gold/comment-*.md``, the renderer's own output for the report's
cases) goes through cmark-gfm (``cmarkgfm``: GitHub's Markdown parser, with its extensions
table, strikethrough, autolink and tagfilter, raw HTML kept and line breaks hard, as in issue
comments) into an HTML page styled by GitHub's own Markdown CSS (npm ``github-markdown-css``
in tests/js), light and dark. Headless Chromium then takes the first screen of each at 780 px,
the width of a comment in a pull request's timeline, into ``bench/results/comment-screens/``.
Mermaid blocks stay code here (GitHub draws them in a frame of its own).

What to look at: the heading names the verdict, the gate and its machine, and the worst change;
the verdict is the first cell of each row, so a long name cannot push it out of view; the
inconclusive rows are folded; no ``\\`` in a ``<summary>``.

    .venv/bin/python bench/render_comment.py [--only NAME] [--open] [--height PX] [--out DIR]

Needs ``pip install cmarkgfm`` (the ``dev`` extra), ``npm ci --prefix tests/js`` and Chromium
(``apt-get install chromium``; ``--chromium PATH`` or ``$CHROMIUM`` for another binary);
``pngquant``, where installed, makes the PNGs a third of the size. About 2 s per screenshot on
2 cores.
"""

from __future__ import annotations

import argparse
import html
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cmarkgfm
from cmarkgfm.cmark import Options

ROOT = Path(__file__).resolve().parents[1]
GOLD = ROOT / "tests" / "gold"
CSS = ROOT / "tests" / "js" / "node_modules" / "github-markdown-css"
OUT = ROOT / "bench" / "results" / "comment-screens"
WIDTH = 780  # a comment in a pull request's timeline, in CSS pixels
EXTENSIONS = ("table", "strikethrough", "autolink", "tagfilter")
# GitHub keeps the raw HTML a comment holds (then sanitizes it) and breaks lines as written.
OPTIONS = (
    Options.CMARK_OPT_UNSAFE | Options.CMARK_OPT_HARDBREAKS | Options.CMARK_OPT_GITHUB_PRE_LANG
)
THEMES = {"light": "#ffffff", "dark": "#0d1117"}


def to_html(markdown: str) -> str:
    """The comment's body as GitHub's parser renders it (before GitHub's sanitizer)."""
    return cmarkgfm.markdown_to_html_with_extensions(
        markdown, options=OPTIONS, extensions=list(EXTENSIONS)
    )


def page(body: str, theme: str, title: str) -> str:
    """A page like a comment in a pull request: GitHub's Markdown CSS, 16 px of padding."""
    css = (CSS / f"github-markdown-{theme}.css").read_text(encoding="utf-8")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{css}
body {{ margin: 0; background: {THEMES[theme]}; }}
.markdown-body {{ box-sizing: border-box; width: {WIDTH}px; padding: 16px; }}
</style></head>
<body><article class="markdown-body">
{body}
</article></body></html>
"""


def chromium(explicit: str | None) -> str:
    """The Chromium binary: ``--chromium``, ``$CHROMIUM``, else ``chromium`` on the PATH."""
    found = explicit or os.environ.get("CHROMIUM") or shutil.which("chromium")
    found = found or shutil.which("chromium-browser")
    if not found:
        sys.exit("render_comment: no Chromium; apt-get install chromium, or pass --chromium PATH")
    return found


def screenshot(browser: str, source: Path, target: Path, height: int) -> None:
    """The first ``height`` pixels of ``source`` at 780 px wide into ``target`` (PNG)."""
    with tempfile.TemporaryDirectory(prefix="perf-gate-chromium-") as profile:
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={WIDTH},{height}",
                f"--screenshot={target}",
                source.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )


def shrink(target: Path) -> None:
    """Fewer colours, where ``pngquant`` is installed (``apt-get install pngquant``): a third of
    the bytes for text on a flat background, with no visible change."""
    tool = shutil.which("pngquant")
    if tool:
        options = ["--force", "--skip-if-larger", "--quality", "70-95"]
        subprocess.run(
            [tool, *options, "--output", str(target), str(target)],
            check=False,
            capture_output=True,
            timeout=60,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="one golden file's case, e.g. regressions")
    parser.add_argument("--height", type=int, default=1200, help="pixels of the first screen")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for the PNGs")
    parser.add_argument("--html", action="store_true", help="keep the HTML pages beside them")
    parser.add_argument("--chromium", help="the Chromium binary")
    parser.add_argument("--quick", action="store_true", help="light theme only")
    parser.add_argument(
        "--open", action="store_true", help="every <details> open (the folds' tables); -open.png"
    )
    args = parser.parse_args(argv)
    if not (CSS / "github-markdown-light.css").is_file():
        sys.exit("render_comment: no github-markdown-css; run `npm ci --prefix tests/js`")
    browser = chromium(args.chromium)
    args.out.mkdir(parents=True, exist_ok=True)
    names = sorted(GOLD.glob("comment-*.md"))
    if args.only:
        names = [p for p in names if p.stem == f"comment-{args.only}"]
    themes = ["light"] if args.quick else list(THEMES)
    print(f"{'comment':<36} {'theme':<6} {'seconds':>7} {'kB':>5}  png")
    with tempfile.TemporaryDirectory(prefix="perf-gate-comment-") as folder:
        for gold in names:
            body = to_html(gold.read_text(encoding="utf-8"))
            suffix = ""
            if args.open:
                body, suffix = body.replace("<details>", "<details open>"), "-open"
            for theme in themes:
                source = Path(folder) / f"{gold.stem}-{theme}{suffix}.html"
                source.write_text(page(body, theme, gold.name), encoding="utf-8")
                target = args.out / f"{gold.stem}-{theme}{suffix}.png"
                start = time.perf_counter()
                screenshot(browser, source, target, args.height)
                shrink(target)
                seconds = time.perf_counter() - start
                if args.html:
                    shutil.copy(source, args.out / source.name)
                size = target.stat().st_size / 1000
                shown = target.relative_to(ROOT) if target.is_relative_to(ROOT) else target
                print(f"{gold.stem:<36} {theme:<6} {seconds:>7.1f} {size:>5.0f}  {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
