"""Process memory readings for fresh-process probes.

Peak resident set size (``ru_maxrss``) sees every allocation, torch's and onnxruntime's native
ones included; ``tracemalloc`` sees only Python's allocator and would report a large model as
nearly free, so it is not used.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path


def peak_rss_bytes() -> int:
    """The peak resident set size of this process so far, in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return int(peak if sys.platform == "darwin" else peak * 1024)


def current_rss_bytes() -> int | None:
    """The current resident set size from /proc (Linux); None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark for this process (Linux >= 4.0); False when unsupported.

    After a reset, ``/proc/self/status`` VmHWM restarts from the current RSS, which lets
    ``perf.memory(fn)`` measure the peak of one call inside a process that did other work, and
    a probe the peak of loading and inference apart from the imports' peak. ``ru_maxrss``
    (``peak_rss_bytes``) restarts too: read the peak before resetting to keep it.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5", encoding="ascii")
    except OSError:
        return False
    return True


def high_water_rss_bytes() -> int | None:
    """VmHWM (peak RSS since start or the last reset) from /proc; None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
