"""The one error tree of perf-gate.

Every error a user can cause is a :class:`GateError` with a one-line message that names the file,
the key and the fix. Entry points print ``perf-gate: error: <message>`` and map the class to an
exit code; nobody below them prints a traceback for a user's mistake.
"""

from __future__ import annotations


class GateError(Exception):
    """Base class: a message for people and a slug that names its section in gate/errors.md
    (``perf-gate explain <slug>`` prints it)."""

    exit_code = 3
    default_slug = "internal"

    def __init__(self, message: str, *, slug: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.slug = slug or self.default_slug

    def __str__(self) -> str:
        return self.message

    def one_line(self) -> str:
        """The message as the CLI prints it, with a pointer to its guide."""
        text = " ".join(self.message.split())
        return f"perf-gate: error: {text} (perf-gate explain {self.slug})"


class ConfigError(GateError):
    """The configuration or a command-line argument is wrong; exit code 2."""

    exit_code = 2
    default_slug = "config"


class BaselineError(GateError):
    """A baseline or run record cannot be read or written; exit code 2 (the user can fix it)."""

    exit_code = 2
    default_slug = "baseline"


class MeasurementError(GateError):
    """A benchmark could not be measured (a worker crashed, a model failed to load); exit code 3."""

    exit_code = 3
    default_slug = "measurement"


class PublishError(GateError):
    """A report could not be published; exit code 3."""

    exit_code = 3
    default_slug = "publish"
