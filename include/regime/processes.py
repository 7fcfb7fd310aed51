"""Processes started in a process group of their own: start, watch, stop (SIGTERM then SIGKILL to every descendant).

What `make ui` (regime.ui.services) and the end-to-end tests' Airflow stack (tests/e2e/stack.py) share. A `Service` is
one command started in a session of its own (its process group id is its pid), its stdout and stderr appended to a
log file; should the starting process be killed outright, the service gets SIGTERM from the kernel (`setpriv
--pdeathsig`, util-linux, where installed). `stop_services` ends a list of them together, descendants that left the
group (Airflow puts each task process in a group of its own) included. psutil is imported by the functions that use
it only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


class ProcessExited(RuntimeError):
    """A started process ended on its own."""


def _alive(proc) -> bool:
    """Running and not a zombie (an orphan's zombie waits for PID 1, which may never reap it in a container)."""
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _describe(proc) -> str:
    """"<pid> <command line>" (its first 80 characters)."""
    import psutil

    try:
        return f"{proc.pid} {' '.join(proc.cmdline())[:80]}"
    except psutil.Error:
        return str(proc.pid)


def tail(path: Path, lines: int = 30, skip: Callable[[str], bool] | None = None) -> str:
    """The last `lines` lines of the text file `path` (those `skip` says no to left out)."""
    if not path.exists():
        return f"({path} does not exist)"
    text = [line for line in path.read_text(errors="replace").splitlines() if not (skip and skip(line))]
    return "\n".join(text[-lines:])


@dataclass
class Service:
    """One process, `cmd`, in a process group of its own (its pgid is its pid), its output appended to `log`.

    `stop_signal` is what `stop_services` sends its group first; `stopping` is set once that began (check_alive then
    keeps quiet) and `stopped` says how it ended: {"returncode", "ended_within_s" (None when killed),
    "sigkilled" (the processes that got SIGKILL, "<pid> <command line>")}."""

    name: str
    cmd: list[str]
    log: Path
    popen: subprocess.Popen | None = None
    stop_signal: int = signal.SIGTERM
    stopping: bool = False
    stopped: dict = field(default_factory=dict)

    def start(self, env: dict, cwd: Path) -> None:
        guard = ["setpriv", "--pdeathsig", "TERM", "--"] if shutil.which("setpriv") else []
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            out.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(self.cmd)}\n".encode())
            out.flush()
            self.popen = subprocess.Popen([*guard, *self.cmd], env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True)

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was not started"
        return self.popen.pid

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def check_alive(self, error: type[Exception] = ProcessExited, lines: int = 40) -> None:
        """Raises `error` (naming the service, its pid, exit code and the end of its log) when the process was
        started and ended other than by `stop_services`."""
        if self.popen is not None and self.popen.poll() is not None and not self.stopping:
            raise error(f"the {self.name} (pid {self.pid}) exited with code {self.popen.returncode}; "
                        f"its log {self.log} ends:\n{tail(self.log, lines)}")

    def tree(self) -> list:
        """The process and its descendants (psutil.Process) alive now; none once the process ended."""
        import psutil

        if not self.running():
            return []
        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def signal_group(self, sig: int) -> None:
        """`sig` to the process group of the started process (its pgid is its pid: start_new_session)."""
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)


def stop_services(services: list[Service], timeout: float = 30.0) -> dict:
    """Stop the services together: each one's stop signal to its group, then, for each one whose process or one of
    its descendants seen before (by pid) is still alive after `timeout` seconds, SIGKILL to its group and to those
    descendants. Records how each one ended in its `stopped` (services already stopped are left alone) and returns
    {"processes": how many there were, "seconds": taken, "killed": ["<pid> <command line>" of each one killed]}."""
    import psutil

    started = [s for s in services if s.popen is not None and not s.stopped]
    trees = {id(s): s.tree() for s in started}
    t0 = time.monotonic()
    for s in started:
        s.stopping = True
        s.signal_group(s.stop_signal)
    ended: dict[int, float] = {}
    while len(ended) < len(started) and time.monotonic() < t0 + timeout:
        for s in started:
            if id(s) not in ended and s.popen.poll() is not None and not any(map(_alive, trees[id(s)][1:])):
                ended[id(s)] = round(time.monotonic() - t0, 2)
        if len(ended) < len(started):
            time.sleep(0.1)
    all_killed = []
    for s in started:
        alive = [p for p in trees[id(s)] if _alive(p)]
        killed = [_describe(p) for p in alive]  # before: a killed process has no command line to read
        if s.popen.poll() is None or alive:
            s.signal_group(signal.SIGKILL)
            for p in alive:
                with contextlib.suppress(psutil.NoSuchProcess):
                    p.kill()
            # not the started process itself: psutil would reap it, and Popen then never learns its exit code
            psutil.wait_procs([p for p in alive if p.pid != s.pid], timeout=10)
        with contextlib.suppress(subprocess.TimeoutExpired):
            s.popen.wait(timeout=10)
        s.stopped = {"returncode": s.popen.returncode, "ended_within_s": ended.get(id(s)), "sigkilled": killed}
        all_killed += killed
    return {"processes": sum(map(len, trees.values())), "seconds": round(time.monotonic() - t0, 1),
            "killed": all_killed}
