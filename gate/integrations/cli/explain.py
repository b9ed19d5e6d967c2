"""``perf-gate explain [SLUG]``: the guide to an error, from the copy of errors.md in the package.

Every error line ends with ``(perf-gate explain <slug>)``; the guide (``gate/errors.md``) ships
with the package, so the pointer works wherever perf-gate is installed, not only in a clone.
"""

from __future__ import annotations

import argparse
import re
from importlib import resources
from typing import Any

from gate.config.checks import closest
from gate.errors import ConfigError

HEADING = re.compile(r"^## ([a-z0-9-]+)\s*$")
ANY_HEADING = re.compile(r"^#{1,6} ")


def guide() -> str:
    return resources.files("gate").joinpath("errors.md").read_text(encoding="utf-8")


def sections(text: str) -> dict[str, str]:
    """Slug -> its section: the heading and the body up to the next heading of any kind.

    Headings that follow each other directly (``## missing-torch`` then ``## missing-onnxruntime``)
    share the body below them, each with its own heading line."""
    found: dict[str, list[str]] = {}
    group: list[str] = []  # the slugs the current body belongs to
    body_started = False
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        match = None if fenced else HEADING.match(line)
        if match:
            if body_started:
                group, body_started = [], False
            group.append(match.group(1))
            found[match.group(1)] = [line]
            continue
        if not fenced and ANY_HEADING.match(line):
            group, body_started = [], False
            continue
        if group and (line.strip() or body_started):
            body_started = True
            for slug in group:
                found[slug].append(line)
    return {slug: "\n".join(lines).strip() for slug, lines in found.items()}


def explain(slug: str | None) -> str:
    """The section for ``slug``, or the list of slugs when it is None; ConfigError if unknown."""
    known = sections(guide())
    if slug is None:
        return "Error guides (perf-gate explain SLUG):\n" + "\n".join(f"  {s}" for s in known)
    if slug in known:
        return known[slug]
    close = closest(slug, known)  # by edit distance: a typo's slug, or none at all
    hint = f"did you mean '{close}'? " if close else ""
    raise ConfigError(
        f"no error guide named '{slug}'; {hint}'perf-gate explain' lists them all",
        slug="config",
    )


def _explain(args: argparse.Namespace) -> int:
    print(explain(args.slug))
    return 0


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "explain",
        help="show what an error means and how to fix it",
        description="Print the guide to an error (the slug at the end of its line), or list them.",
    )
    parser.add_argument("slug", nargs="?", help="e.g. baseline-corrupt; omit to list all")
    parser.set_defaults(handler=_explain)
