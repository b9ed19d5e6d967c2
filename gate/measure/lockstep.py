"""Parallel ``ab`` rounds: the base and head workers of a round run at the same time, in step.

Duet benchmarking (Bulej et al., ICPE 2020) runs both versions at the same time on the same
machine, so what disturbs the machine meanwhile (a neighbour's burst, a frequency step) hits
both and cancels in their ratio. Two workers of one thread each run side by side on a machine
with at least twice the cores the benchmark's threads need. They measure the same benchmarks in
the same order (one seed), and before each timed measurement (a benchmark at one batch size)
each waits at a barrier until the other is there too, so their timed loops start together.

The barrier runs over two pipes per worker (never stdout, which the user's code may write to):
the worker writes one byte and blocks reading one; the parent's ``Barrier`` thread answers both
once both have arrived. A worker that ends (crash, or done) frees its partner: from then on
every arrival of the other is answered at once.
"""

from __future__ import annotations

import os
import select
import threading
from collections.abc import Callable

# Worker side ------------------------------------------------------------------------------


def worker_barrier(spec: str | None) -> Callable[[], None] | None:
    """The barrier of a worker started with ``--barrier R,W`` (fds): write, then wait for the
    parent's answer; None without one. A parent that has gone answers nothing: go on."""
    if not spec:
        return None
    read_fd, write_fd = (int(part) for part in spec.split(","))
    alive = [True]

    def wait() -> None:
        if not alive[0]:
            return
        try:
            os.write(write_fd, b"r")
            if os.read(read_fd, 1) == b"":
                alive[0] = False
        except OSError:
            alive[0] = False

    return wait


# Parent side ------------------------------------------------------------------------------


class Barrier:
    """The parent's end of the barrier for two workers: worker ``i`` is started with
    ``--barrier spec(i)`` and ``pass_fds=fds(i)``; ``started(i)`` right after it was spawned (or
    failed to spawn) closes its ends here, so that its exit reads as the end of its pipe;
    ``join()`` after both ended. ``meetings`` counts the barriers both workers met at."""

    def __init__(self) -> None:
        self._to_worker = [os.pipe() for _ in range(2)]  # (worker reads, parent writes)
        self._to_parent = [os.pipe() for _ in range(2)]  # (parent reads, worker writes)
        self._closed: set[int] = set()
        self.meetings = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def spec(self, index: int) -> str:
        return f"{self._to_worker[index][0]},{self._to_parent[index][1]}"

    def fds(self, index: int) -> tuple[int, int]:
        return self._to_worker[index][0], self._to_parent[index][1]

    def started(self, index: int) -> None:
        if index not in self._closed:
            self._closed.add(index)
            for fd in self.fds(index):
                os.close(fd)

    def _serve(self) -> None:
        reads = {self._to_parent[i][0]: i for i in range(2)}
        writes = [self._to_worker[i][1] for i in range(2)]
        waiting: set[int] = set()
        ended: set[int] = set()
        while len(ended) < 2:
            ready, _, _ = select.select([fd for fd, i in reads.items() if i not in ended], [], [])
            for fd in ready:
                index = reads[fd]
                if os.read(fd, 1) == b"":
                    ended.add(index)
                    waiting.discard(index)
                else:
                    waiting.add(index)
            if waiting and (len(waiting) == 2 or ended):
                for index in waiting:
                    try:
                        os.write(writes[index], b"g")
                    except OSError:
                        ended.add(index)
                if len(waiting) == 2:
                    self.meetings += 1
                waiting.clear()

    def join(self, timeout: float | None = None) -> None:
        for index in range(2):
            self.started(index)  # a worker never started must not keep its partner waiting
        self._thread.join(timeout)
        for index in range(2):
            for fd in (self._to_parent[index][0], self._to_worker[index][1]):
                try:
                    os.close(fd)
                except OSError:
                    pass


def parallel_possible(threads: int, cores: int | None = None) -> bool:
    """Whether two workers of ``threads`` threads each fit on this machine's cores side by side."""
    available = cores if cores is not None else len(os.sched_getaffinity(0))
    return available >= 2 * threads
