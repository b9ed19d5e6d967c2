"""The error context every config parser shares: each message names the file and the key path."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from gate.errors import ConfigError

NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


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
                        f"unknown key; expected one of {', '.join(allowed)}",
                    )
        return value

    def integer(self, value: Any, key: str, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"expected an integer >= {minimum}, got {value!r}")
        if value < minimum:
            raise self.error(key, f"expected an integer >= {minimum}, got {value}")
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
                    f"unknown value {item!r}; expected one of {', '.join(allowed)}",
                )
        if len(set(value)) != len(value):
            raise self.error(key, "lists a value twice")
        return tuple(value)

    def quantity(self, value: Any, key: str, parse: Any) -> float:
        try:
            result = float(parse(value))
        except ValueError as exc:
            raise self.error(key, str(exc)) from None
        if result < 0:
            raise self.error(key, f"must not be negative, got {value!r}")
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
