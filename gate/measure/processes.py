"""Worker processes under limits: their own process group, a memory limit, their output's tail,
and how they ended, in words.

Every worker (a measuring round, a prepare or eval worker, a ``pytest --perf-gate-worker``
round) leads a process group of its own, so that a timeout or a crash ends it *and* whatever
the user's code started (a DataLoader's workers, a subprocess), and so that nothing it leaves
behind keeps running after the gate. Its memory is bounded with ``RLIMIT_DATA`` (which counts
the heap and private anonymous mappings, where torch, numpy and onnxruntime allocate, but not
the address space that thread stacks or a CUDA driver reserve): a model that allocates far too
much fails in its own process with an allocation error that names the limit, instead of
meeting the machine's out-of-memory killer along with the gate. The limit travels to the
worker in ``MEMORY_LIMIT_ENV`` and the worker applies it to itself (``apply_memory_limit``),
which covers freshly started and forked workers alike.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import threading
from typing import IO

from gate.units import format_value

MEMORY_LIMIT_ENV = "PERF_GATE_MEMORY_LIMIT"  # bytes, decimal
TAIL_LINES = 20

# What a signal that ended a worker most often means.
SIGNAL_CAUSES = {
    signal.SIGKILL: "stopped from outside, most often by the system's out-of-memory killer",
    signal.SIGSEGV: "a crash in native code (a segmentation fault)",
    signal.SIGABRT: "aborted, most often by a failed check in native code",
    signal.SIGBUS: "a crash in native code (a bus error)",
    signal.SIGFPE: "a crash in native code (an arithmetic fault)",
    signal.SIGILL: "a crash in native code (an instruction this CPU does not have)",
    signal.SIGTERM: "stopped from outside",
}


def describe_limit(limit: int) -> str:
    return format_value(float(limit), "B")


def apply_memory_limit() -> int | None:
    """Bound this process's data segment by ``MEMORY_LIMIT_ENV`` (never above a hard limit
    already set); returns the limit applied, or None."""
    text = os.environ.get(MEMORY_LIMIT_ENV, "")
    if not text.isdigit():
        return None
    try:
        import resource
    except ImportError:  # not a POSIX system: no limit to set
        return None
    limit = int(text)
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    try:
        resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    except (ValueError, OSError):
        return None
    return limit


def memory_hint(message: str) -> str:
    """An allocation failure's message, with the worker's memory limit where one is set."""
    text = os.environ.get(MEMORY_LIMIT_ENV, "")
    lowered = message.lower()
    failed = any(
        words in lowered
        for words in ("memoryerror", "can't allocate memory", "out of memory", "bad_alloc")
    )
    if not (failed and text.isdigit()):
        return message
    return (
        f"{message}; the worker's memory limit is {describe_limit(int(text))} "
        "(measure.memory_limit: raise it, or 'none')"
    )


def kill_group(pid: int, *, leader_alive: bool = True) -> None:
    """End the process group that ``pid`` leads (the worker and all it started). Where the
    leader is still alive but has no group of its own yet, the process alone; after it exited
    (``leader_alive`` False), only what is left of its group."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        if leader_alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def exit_description(code: int) -> str:
    """``exit code 3`` or ``killed by SIGSEGV (a crash in native code ...)``."""
    if code >= 0:
        return f"exit code {code}"
    try:
        number = signal.Signals(-code)
    except ValueError:
        return f"killed by signal {-code}"
    cause = SIGNAL_CAUSES.get(number)
    return f"killed by {number.name}" + (f" ({cause})" if cause else "")


class Tail:
    """Reads a worker's output stream to its end in a thread: keeps the last lines for an
    error message and, where ``echo`` is given, passes every line through to it."""

    def __init__(self, stream: IO[str], echo: IO[str] | None = None) -> None:
        self._stream = stream
        self._echo = echo
        self._lines: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            for line in self._stream:
                if line.strip():
                    self._lines.append(line.rstrip("\n"))
                if self._echo is not None:
                    with contextlib.suppress(ValueError, OSError):
                        self._echo.write(line)
                        self._echo.flush()

    def text(self, timeout: float = 5.0) -> str:
        """The kept lines, once the stream ended (or ``timeout`` seconds passed: a child of
        the worker may hold the stream open)."""
        self._thread.join(timeout)
        return "\n".join(self._lines)

    def last(self, count: int = 3) -> str:
        """The last ``count`` lines joined with `` | ``, or ``no output``."""
        lines = self.text().splitlines()[-count:]
        return " | ".join(lines) or "no output"
