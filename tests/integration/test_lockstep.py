"""The barrier of parallel ab rounds (gate.measure.lockstep) between two real processes: each
timed measurement starts only when both are there, and a partner that ends frees the other."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

from gate.measure.lockstep import Barrier, parallel_possible

WORKER = """
import json, sys, time
from gate.measure.lockstep import worker_barrier
wait = worker_barrier(sys.argv[1])
delay, meetings = float(sys.argv[2]), int(sys.argv[3])
log = []
for _ in range(meetings):
    time.sleep(delay)
    arrived = time.time()
    wait()
    log.append((arrived, time.time()))
print(json.dumps(log))
"""


def run_pair(delays: tuple[float, float], meetings: tuple[int, int]) -> tuple[Barrier, list]:
    barrier = Barrier()
    logs: list = [None, None]

    def run(index: int) -> None:
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                barrier.spec(index),
                str(delays[index]),
                str(meetings[index]),
            ],
            stdout=subprocess.PIPE,
            text=True,
            pass_fds=barrier.fds(index),
        )
        barrier.started(index)
        out, _ = process.communicate(timeout=60)
        logs[index] = json.loads(out)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    barrier.join(timeout=10)
    return barrier, logs


def test_each_measurement_starts_when_both_workers_are_there() -> None:
    barrier, (fast, slow) = run_pair((0.0, 0.2), (3, 3))
    assert barrier.meetings == 3
    for (_, fast_released), (slow_arrived, _) in zip(fast, slow, strict=True):
        assert fast_released >= slow_arrived  # the fast one waited for the slow one


def test_a_partner_that_ends_frees_the_other() -> None:
    barrier, (gone, alone) = run_pair((0.0, 0.0), (0, 3))
    assert gone == []
    assert len(alone) == 3  # it went on alone instead of waiting for ever
    assert barrier.meetings == 0


def test_parallel_needs_two_workers_worth_of_cores() -> None:
    assert parallel_possible(1, cores=2)
    assert not parallel_possible(2, cores=2)
    assert not parallel_possible(1, cores=1)
