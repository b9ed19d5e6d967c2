"""The error context every config parser shares: each message names the file and the key path.

Every number read from the config has a range (``integer(..., maximum=)``, ``quantity(...,
maximum=)``): values outside it, and infinities or NaN, are errors that say the range. Every
mapping with fixed keys refuses an unknown key and names the closest known one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from gate.errors import ConfigError

NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
# Names that end up in file names (models, baseline keys): short enough for any file system.
MAX_NAME = 100


def distance(a: str, b: str) -> int:
    """The edit distance of ``a`` and ``b``: insertions, deletions, substitutions and swaps of
    two neighbouring characters (optimal string alignment), each counting 1."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, left in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, right in enumerate(b, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (left != right))
            if i > 1 and j > 1 and left == b[j - 2] and a[i - 2] == right:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[-1]


def closest(name: str, known: Iterable[str], *, strict: bool = False) -> str | None:
    """The known name a typo of ``name`` most likely meant: the nearest by edit distance, when
    it is within a third of the longer name (at least 1); None when nothing is that close.
    ``strict`` (where a near miss is refused rather than hinted at) allows one edit less, so
    that short names of their own (``map`` beside ``mae``) stay allowed."""
    best: tuple[int, str] | None = None
    for candidate in known:
        longer = max(len(name), len(candidate))
        limit = (longer - 1) // 3 if strict else max(1, longer // 3)
        if abs(len(name) - len(candidate)) > limit:  # at least that many edits: not a typo
            continue
        gap = distance(name.lower(), candidate.lower())
        if gap <= limit and (best is None or gap < best[0]):
            best = (gap, candidate)
    return best[1] if best else None


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest known name, else ``""``."""
    guess = closest(name, known)
    return f"; did you mean {guess!r}?" if guess else ""


class Checker:
    """Carries the file label so that every message names the file and the key path."""

    def __init__(self, label: str, *, prefix: str = "") -> None:
        self.label = label
        self.prefix = prefix  # "tool.perf-gate." in pyproject.toml

    def error(self, key: str, message: str) -> ConfigError:
        where = f"{self.prefix}{key}" if key else self.prefix.rstrip(".")
        return ConfigError(
            f"{self.label}: {where}: {message}" if where else f"{self.label}: {message}"
        )

    def mapping(self, value: Any, key: str, allowed: tuple[str, ...] | None) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(key, f"expected a mapping, got {kind(value)}")
        if allowed is not None:
            for name in value:
                if name not in allowed:
                    raise self.error(
                        f"{key}.{name}" if key else str(name),
                        f"unknown key; expected one of {', '.join(allowed)}"
                        + did_you_mean(str(name), allowed),
                    )
        return value

    def integer(self, value: Any, key: str, minimum: int, maximum: int | None = None) -> int:
        """An integer in ``minimum..maximum``; the message says the range."""
        allowed = f" (allowed: {minimum} to {maximum})" if maximum is not None else ""
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"expected an integer >= {minimum}, got {value!r}{allowed}")
        if value < minimum:
            raise self.error(key, f"expected an integer >= {minimum}, got {value}{allowed}")
        if maximum is not None and value > maximum:
            raise self.error(key, f"expected an integer <= {maximum}, got {value}{allowed}")
        return value

    def string_list(self, value: Any, key: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            raise self.error(key, f"expected a non-empty list, got {kind(value)}")
        for index, item in enumerate(value):
            if item not in allowed:
                raise self.error(
                    f"{key}[{index}]",
                    f"unknown value {item!r}; expected one of {', '.join(allowed)}"
                    + did_you_mean(str(item), allowed),
                )
        if len(set(value)) != len(value):
            raise self.error(key, "lists a value twice")
        return tuple(value)

    def quantity(
        self,
        value: Any,
        key: str,
        parse: Callable[[Any], float],
        maximum: float | None = None,
        *,
        show: Callable[[float], str] = str,
    ) -> float:
        """A quantity (``0.5s``, ``8MiB``) from 0 up to ``maximum`` (in the parser's unit);
        ``show`` writes the maximum back in the user's terms."""
        allowed = f" (allowed: 0 to {show(maximum)})" if maximum is not None else ""
        try:
            result = float(parse(value))
        except ValueError as exc:
            raise self.error(key, f"{exc}{allowed}") from None
        if result < 0:
            raise self.error(key, f"must not be negative, got {value!r}{allowed}")
        if maximum is not None and result > maximum:
            raise self.error(key, f"must be at most {show(maximum)}, got {value!r}")
        return result


def path_value(ctx: Checker, value: Any, key: str, root: Path) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise ctx.error(key, f"expected a path, got {value!r}")
    candidate = Path(value)
    return candidate if candidate.is_absolute() else root / candidate


def kind(value: Any) -> str:
    if value is None:
        return "nothing"
    names: dict[type, str] = {dict: "a mapping", list: "a list", str: "a string"}
    return names.get(type(value), type(value).__name__)
