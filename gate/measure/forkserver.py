"""Timing and evaluation workers forked from a preloaded interpreter (Linux), so a round does
not pay for importing torch again (about 1.8 s of a 2.5-3 s torch round process here).

Parent side: ``ForkServer`` starts ``python -m gate.measure.forkserver`` once per thread count
(with the workers' thread variables, so the libraries read the same values at load) and, when
asked, torch imported; ``ForkServer.spawn`` returns a ``Forked`` worker, used like a Popen.
Server side (``serve``): for each request it forks a monitor, which forks the worker and
reports its pid and exit status. The worker gets the request's working folder, environment,
``sys.path`` (the folder, then its ``PYTHONPATH``, then the interpreter's own entries: what a
fresh ``python -m`` would have), descriptors (stdout, stderr, a lockstep barrier's pipes at the
numbers its arguments name) and a fresh random seed, then runs the worker's ``main``.

Nothing of the user's is imported before the fork: the server imports perf-gate's worker
modules and the runtime only, so each worker still imports the model's own code afresh (and a
base-revision worker the base's). What a forked worker shares with the others is the state
the runtime's import left (its memory layout included), so rounds vary a little less than fresh
interpreters do. Evaluation (deterministic) and preparation workers are forked too. Probes
(memory, cold start) and profiles keep fresh interpreters: their readings include what an import
costs. ``PERF_GATE_FORKSERVER=0`` turns it
off (every worker a fresh interpreter), and any failure to start falls back to that.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import weakref
from pathlib import Path
from typing import IO, Any

from gate.measure import processes

SWITCH = "PERF_GATE_FORKSERVER"  # "0": every worker is a fresh interpreter
START_TIMEOUT = 120.0  # seconds for the server to import what it preloads
_HIGH_FD = 100  # received descriptors are moved above this before being put in place
MODULES_FILE = "modules.json"  # the top-level modules the server loaded before forking


def available() -> bool:
    """Forking is used on Linux (descriptors passed over a Unix socket) unless switched off."""
    return (
        sys.platform == "linux"
        and hasattr(socket, "send_fds")
        and os.environ.get(SWITCH, "1") != "0"
    )


class ForkServerUnavailable(Exception):
    """The server could not start (its stderr's last line says why)."""


class Forked:
    """A forked worker, as much of a Popen as ``Runner.worker`` uses."""

    def __init__(
        self, connection: socket.socket, output: IO[str], echo: IO[str] | None = None
    ) -> None:
        self._connection = connection
        self._buffer = b""
        self.stdout = output  # stdout and stderr of the worker, one stream
        self.tail = processes.Tail(output, echo)
        self.returncode: int | None = None
        first = self._line(START_TIMEOUT)
        if not first:
            self.returncode = -9
            self._close()
            raise ForkServerUnavailable("the fork server closed the connection")
        self.pid: int = json.loads(first)["pid"]

    def _line(self, timeout: float | None) -> bytes:
        """The next line from the monitor; b"" when it closed; TimeoutExpired past ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self._connection], [], [], left)
            if not ready:
                raise subprocess.TimeoutExpired("forked worker", timeout or 0.0)
            chunk = self._connection.recv(4096)
            if not chunk:
                return b""
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the exit (``subprocess.TimeoutExpired`` after ``timeout`` seconds)."""
        if self.returncode is None:
            line = self._line(timeout)
            self.returncode = int(json.loads(line)["exit"]) if line else -9
            self._connection.close()
        return self.returncode

    def kill(self) -> None:
        processes.kill_group(self.pid)

    def _close(self) -> None:
        self._connection.close()
        self.stdout.close()

    def __enter__(self) -> Forked:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.returncode is None:
            self.kill()
            with contextlib.suppress(Exception):
                self.wait(timeout=10.0)
        self._close()


class ForkServer:
    """One preloaded interpreter that forks workers; stopped by ``stop`` or with its owner."""

    def __init__(
        self,
        env: dict[str, str],
        cwd: Path,
        preload: tuple[str, ...],
        python: str = sys.executable,  # a base environment's interpreter (base_env)
    ) -> None:
        self._folder = tempfile.mkdtemp(prefix="perf-gate-fork-")
        self.address = os.path.join(self._folder, "socket")
        ready_read, ready_write = os.pipe()
        alive_read, self._alive = os.pipe()  # the server stops when this closes
        log = Path(self._folder) / "server.log"
        with open(log, "w", encoding="utf-8") as errors:
            self.process = subprocess.Popen(
                [
                    python,
                    "-m",
                    "gate.measure.forkserver",
                    self.address,
                    str(ready_write),
                    str(alive_read),
                    *preload,
                ],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                pass_fds=(ready_write, alive_read),
            )
        os.close(ready_write)
        os.close(alive_read)
        self._stopper = weakref.finalize(self, _stop, self.process, self._alive, self._folder)
        try:
            ready, _, _ = select.select([ready_read], [], [], START_TIMEOUT)
            answer = os.read(ready_read, 2) if ready else b""
        finally:
            os.close(ready_read)
        if answer != b"ok":
            lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
            self.stop()
            raise ForkServerUnavailable(lines[-1] if lines else "it did not start in time")
        # the top-level modules every forked worker starts with (None: unknown)
        self.modules: frozenset[str] | None = None
        with contextlib.suppress(OSError, ValueError, TypeError):
            names = json.loads((Path(self._folder) / MODULES_FILE).read_text(encoding="utf-8"))
            self.modules = frozenset(str(name) for name in names)

    def spawn(
        self,
        argv: list[str],
        *,
        cwd: Path,
        env: dict[str, str],
        echo: IO[str] | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> Forked:
        """Fork a worker running ``gate.measure.worker.main`` with ``argv``; its stdout and
        stderr come back as one stream (passed through to ``echo`` where given); ``pass_fds``
        keep their numbers in it. Raises ForkServerUnavailable when the server is gone."""
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sent: list[int] = []
        read_end, write_end = os.pipe()
        output = os.fdopen(read_end, "r", encoding="utf-8", errors="replace")
        try:
            connection.connect(self.address)
            sent += [write_end, os.dup(write_end)]
            sent += [os.dup(fd) for fd in pass_fds]
            request = {
                "argv": argv,
                "cwd": str(cwd),
                "env": env,
                "targets": [1, 2, *pass_fds],
            }
            socket.send_fds(connection, [json.dumps(request).encode()], sent)
        except OSError as exc:
            connection.close()
            output.close()
            raise ForkServerUnavailable(str(exc)) from exc
        finally:
            for fd in sent:
                os.close(fd)
        try:
            return Forked(connection, output, echo)
        except (OSError, ValueError, KeyError) as exc:
            output.close()
            raise ForkServerUnavailable(str(exc)) from exc

    def stop(self) -> None:
        self._stopper()


def _stop(process: subprocess.Popen[bytes], alive: int, folder: str) -> None:
    with contextlib.suppress(OSError):
        os.close(alive)
    try:
        process.wait(timeout=5.0)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    with contextlib.suppress(OSError):
        for name in os.listdir(folder):
            os.unlink(os.path.join(folder, name))
        os.rmdir(folder)


# --------------------------------------------------------------------------------------------
# Server side


def serve(address: str, ready: int, alive: int, preload: list[str]) -> None:
    """Import the worker's modules and ``preload``, then fork a worker per request until the
    parent's ``alive`` pipe closes."""
    for name in preload:
        importlib.import_module(name)
    importlib.import_module("gate.measure.worker.main")
    # what is loaded before any fork: a base environment's worker may share this server only
    # when none of its own packages is among these (runner.Runner._server)
    loaded = sorted({name.split(".")[0] for name in sys.modules})
    Path(address).with_name(MODULES_FILE).write_text(json.dumps(loaded), encoding="utf-8")
    own = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    # What every fresh interpreter has: sys.path without the folder and PYTHONPATH entries.
    base_path = [p for p in sys.path[1:] if p not in own]
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(64)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # monitors are reaped by the kernel
    os.write(ready, b"ok")
    os.close(ready)
    while True:
        readable, _, _ = select.select([listener.fileno(), alive], [], [])
        if alive in readable:  # the parent closed it, or exited
            return
        connection, _ = listener.accept()
        try:
            message, fds, _, _ = socket.recv_fds(connection, 1 << 22, 64)
            request = json.loads(message)
        except (OSError, ValueError):
            connection.close()
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        if os.fork() == 0:
            listener.close()
            os.close(alive)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            _monitor(connection, request, fds, base_path)
        connection.close()
        for fd in fds:
            os.close(fd)


def _monitor(
    connection: socket.socket, request: dict[str, Any], fds: list[int], base_path: list[str]
) -> None:
    """Fork the worker, report its pid, wait for it, report its exit status; never returns."""
    code = 0
    try:
        pid = os.fork()
        if pid == 0:
            connection.close()
            _worker(request, fds, base_path)
        for fd in fds:
            os.close(fd)
        connection.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        _, status = os.waitpid(pid, 0)
        connection.sendall(json.dumps({"exit": os.waitstatus_to_exitcode(status)}).encode() + b"\n")
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _worker(request: dict[str, Any], fds: list[int], base_path: list[str]) -> None:
    """Become the worker the request describes; never returns."""
    code = 1
    try:
        os.setsid()  # a process group of its own, ended as a whole (processes.py)
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, _HIGH_FD) for fd in fds]
        for fd in fds:
            os.close(fd)
        for source, target in zip(high, request["targets"], strict=True):
            os.dup2(source, target)
        for fd in high:
            os.close(fd)
        stdin = os.open(os.devnull, os.O_RDONLY)
        os.dup2(stdin, 0)
        os.close(stdin)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        extra = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
        sys.path[:] = [request["cwd"], *extra, *base_path]
        importlib.invalidate_caches()
        random.seed()
        sys.argv = ["gate.measure.worker.main", *request["argv"]]
        from gate.measure.worker.main import main

        code = main(request["argv"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:])
