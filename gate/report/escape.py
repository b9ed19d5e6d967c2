"""Escaping of untrusted text for the Markdown report and its Mermaid charts.

Benchmark and metric names, notes and environment values come from pull requests (a benchmark
is a test anyone can add). In the report they must not break a table, inject HTML or links,
@-mention people, reference issues, or forge the hidden marker that identifies the comment.
"""

from __future__ import annotations

import re

from markupsafe import Markup

TEXT_LIMIT = 120  # characters of one name from a pull request shown in the report

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")
_ZWSP = "&#8203;"  # a zero-width space breaks @mentions, #references and autolinks
_CHARACTERS = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    '"': "&quot;",
    "#": "#" + _ZWSP,
    **{c: "\\" + c for c in "\\`*_[]()|~!{}"},
}
# ``@name`` mentions and ``a@b.c`` mail links; ``throughput@32`` (a metric at a batch size) stays.
_AT = re.compile(r"(?<!\w)@|@(?!\d+(?![\w.]))")
_LINE_START = re.compile(r"^([-+]|\d+(?=[.)]))")
_WWW = re.compile(r"(?i)\bwww\.")


def clip(text: str, limit: int = TEXT_LIMIT) -> str:
    """``text`` on one line and at most ``limit`` characters (``…`` marks a cut)."""
    text = _CONTROL.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _line_start(match: re.Match[str]) -> str:
    """``- x`` or ``1. x`` at the start would make a list inside a list item."""
    text = match.group(1)
    return "\\" + text if text in "-+" else text + "\\"


def escape_text(value: object, limit: int = TEXT_LIMIT) -> str:
    """Markdown-inert text: safe in a table cell, a list item or a paragraph.

    Newlines become spaces; ``|`` and Markdown punctuation are backslash-escaped; ``<``, ``>``
    and ``&`` become entities (so no HTML and no ``<!--`` marker can form); ``@``, ``#``,
    ``://`` and ``www.`` get a zero-width space so GitHub makes no mention, reference or link.
    """
    text = clip(str(value), limit)
    escaped = "".join(_CHARACTERS.get(c, c) for c in text)
    escaped = _LINE_START.sub(_line_start, escaped)
    escaped = _AT.sub("@" + _ZWSP, escaped).replace("://", ":" + _ZWSP + "//")
    return _WWW.sub(lambda m: m.group(0)[:3] + _ZWSP + ".", escaped)


_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;", "#": "#" + _ZWSP}


def escape_html(value: object, limit: int = TEXT_LIMIT) -> str:
    """Text for raw HTML, such as a ``<summary>``: GitHub shows an HTML block as it is, so a
    backslash escape would be shown too. ``&``, ``<``, ``>`` and quotes become entities (no tag,
    no ``</details>``, no marker can form) and ``@``, ``#``, ``://`` and ``www.`` get a
    zero-width space as in ``escape_text``; backticks, ``|`` and ``*`` are plain characters there.
    """
    text = clip(str(value), limit)
    escaped = "".join(_HTML.get(c, c) for c in text)
    escaped = _AT.sub("@" + _ZWSP, escaped).replace("://", ":" + _ZWSP + "//")
    return _WWW.sub(lambda m: m.group(0)[:3] + _ZWSP + ".", escaped)


def chart_text(value: object, limit: int = 40) -> str:
    """Text for a Mermaid string: no quotes, backticks or other characters its grammar owns."""
    return re.sub(r"[^A-Za-z0-9 _.\-\[\]()/:+%]", "_", clip(str(value), limit))


def safe(text: str) -> Markup:
    """Mark text composed from trusted parts (numbers, escaped names): printed as it is."""
    return Markup(text)


def finalize(value: object) -> object:
    """Every ``{{ }}`` output of the templates: escaped unless marked safe."""
    if isinstance(value, Markup):
        return value
    return escape_text(value, limit=10 * TEXT_LIMIT)
