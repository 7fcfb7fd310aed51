"""regime.processes on real processes: stop_services ends whole trees (SIGKILL for what ignores SIGTERM, descendants
that left the group included) and check_alive tells a process that died from one that was stopped."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from regime.processes import ProcessExited, Service, _alive, stop_services


@pytest.fixture
def start(tmp_path):
    """start(name, shell command) -> a started Service logging to tmp_path/logs/<name>.log; all stopped at the end."""
    started: list[Service] = []

    def _start(name: str, script: str) -> Service:
        service = Service(name, ["bash", "-c", script], tmp_path / "logs" / f"{name}.log")
        service.start(env=dict(os.environ), cwd=tmp_path)
        started.append(service)
        return service

    yield _start
    stop_services(started, timeout=0.5)


def _wait_for(check, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "not within the timeout"
        time.sleep(0.05)
    return result


def test_stop_services_ends_every_descendant_sigkilling_those_that_ignore_sigterm(start):
    polite = start("polite", "exec sleep 60")
    # ignores SIGTERM (and so do its children: an ignored signal stays ignored across exec); one child leaves the group
    stubborn = start("stubborn", "trap '' TERM; setsid sleep 61 & sleep 62 & wait")
    # the three of them, once the setsid one left the group (its fork is in the tree before setsid(2) ran)
    tree = _wait_for(lambda: len(t := stubborn.tree()) == 3 and any(os.getpgid(p.pid) != stubborn.pid for p in t) and t)

    t0 = time.monotonic()
    summary = stop_services([polite, stubborn], timeout=1.0)
    assert time.monotonic() - t0 < 5

    assert polite.stopped["returncode"] == -15 and polite.stopped["sigkilled"] == []
    assert 0 <= polite.stopped["ended_within_s"] < 1.0
    assert stubborn.stopped["returncode"] == -9 and stubborn.stopped["ended_within_s"] is None
    assert sorted(int(k.split()[0]) for k in stubborn.stopped["sigkilled"]) == sorted(p.pid for p in tree)
    assert not any(map(_alive, tree))
    assert summary["processes"] == 4 and sorted(summary["killed"]) == sorted(stubborn.stopped["sigkilled"])
    assert summary["seconds"] >= 1.0
    assert not polite.running() and polite.tree() == []

    again = stop_services([polite, stubborn], timeout=1.0)  # already stopped: left alone
    assert again["processes"] == 0 and stubborn.stopped["returncode"] == -9


def test_check_alive_names_a_service_that_exited_on_its_own_not_one_that_was_stopped(start, tmp_path):
    quitter = start("quitter", "echo boom; exit 3")
    sleeper = start("sleeper", "exec sleep 60")
    _wait_for(lambda: not quitter.running())
    with pytest.raises(ProcessExited, match=rf"the quitter \(pid {quitter.pid}\) exited with code 3;(.|\n)*boom"):
        quitter.check_alive()

    class Mine(Exception):
        pass

    with pytest.raises(Mine, match="quitter"):
        quitter.check_alive(Mine)
    sleeper.check_alive()  # running: fine
    log = (tmp_path / "logs" / "quitter.log").read_text()
    assert log.startswith("\n--- ") and "bash -c echo boom; exit 3\nboom\n" in log

    stop_services([sleeper, quitter], timeout=1.0)
    assert sleeper.stopped["returncode"] == -15 and quitter.stopped["returncode"] == 3
    sleeper.check_alive()
    quitter.check_alive()


def test_importing_it_does_not_import_psutil():
    code = "import sys, regime.processes; assert 'psutil' not in sys.modules, 'psutil imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
