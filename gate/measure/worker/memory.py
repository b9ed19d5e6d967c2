"""Process memory readings for fresh-process probes.

A process's own peak resident set size is the kernel's high-water mark of its address space,
``VmHWM`` in ``/proc/self/status``: a new address space starts at exec, so a probe process
counts its own pages only. ``ru_maxrss`` is not that on Linux: it is the larger of VmHWM and a
peak kept across exec, which exec sets from the address space it replaces (the parent's, copied
at fork), so a probe started by a parent of 300 MB reports at least 300 MB whatever it did
itself. It is therefore the fallback where ``/proc`` is missing, never the first choice. Both
see every allocation, torch's and onnxruntime's native ones included; ``tracemalloc`` sees
only Python's allocator and would report a large model as nearly free, so it is not used.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_bytes(field: str, status: Path) -> int | None:
    """A ``kB`` field of ``status`` (``/proc/self/status``) in bytes; None where unreadable."""
    try:
        for line in status.read_text(encoding="utf-8").splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def ru_maxrss_bytes() -> int:
    """``getrusage``'s peak RSS in bytes. On Linux it is at least the RSS of the parent at
    fork (kept across exec): the launcher's memory as much as this process's."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return int(peak if sys.platform == "darwin" else peak * 1024)


def peak_source(status: Path = STATUS) -> str:
    """Where ``peak_rss_bytes`` reads from here: ``VmHWM``, or ``ru_maxrss`` without /proc."""
    return "VmHWM" if _status_bytes("VmHWM", status) is not None else "ru_maxrss"


def peak_rss_bytes(status: Path = STATUS) -> int:
    """This process's own peak RSS in bytes: VmHWM (since exec, or since the last
    ``reset_peak_rss``), else ``ru_maxrss`` where /proc is missing (see ``peak_source``)."""
    own = _status_bytes("VmHWM", status)
    return own if own is not None else ru_maxrss_bytes()


def current_rss_bytes(status: Path = STATUS) -> int | None:
    """The current resident set size from /proc (Linux); None elsewhere."""
    return _status_bytes("VmRSS", status)


def reset_peak_rss(clear_refs: Path = CLEAR_REFS) -> bool:
    """Restart this process's VmHWM from its current RSS (Linux >= 4.0, writing 5 to
    ``/proc/self/clear_refs``); False when unsupported.

    This lets ``perf.memory(fn)`` measure the peak of one call inside a process that did other
    work, and a probe the peak of loading and inference apart from the imports' peak. The
    reset does not clear ``ru_maxrss``: its part kept across exec (the parent's RSS at fork)
    stays. Read ``peak_rss_bytes`` before resetting to keep the peak so far."""
    try:
        clear_refs.write_text("5", encoding="ascii")
    except OSError:
        return False
    return True


def high_water_rss_bytes(status: Path = STATUS) -> int | None:
    """VmHWM (peak RSS since exec or the last reset) from /proc; None elsewhere."""
    return _status_bytes("VmHWM", status)
