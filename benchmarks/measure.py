"""Measuring on this machine: a worker's RSS sampled from /proc, the step timings warehouse.build / update log,
another process's CPU time sampled from /proc, and the machine's facts (cores, memory, load, busy processes)."""

from __future__ import annotations

import logging
import os
import platform
import subprocess
import threading
import time


class Sampler:
    """Samples this process's RSS every few milliseconds, so that a step's peak can be read off its time window."""

    def __init__(self, every: float = 0.005):
        self.samples: list[tuple[float, int]] = []
        self.every = every
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            self.samples.append((time.time(), rss_kb("VmRSS")))
            self.stop.wait(self.every)

    def peak_mb(self, start: float, end: float) -> float:
        inside = [kb for t, kb in self.samples if start <= t <= end]
        if not inside:  # shorter than the sampling interval: the sample nearest its end
            inside = [min(self.samples, key=lambda s: abs(s[0] - end))[1]]
        return max(inside) / 1024


def rss_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class StepLog(logging.Handler):
    """Collects the step timings warehouse.build / update log (extra step/table/rows/seconds)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.records: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        if hasattr(record, "step"):
            self.records.append({"step": record.step, "table": record.table, "rows": record.rows,
                                 "seconds": record.seconds, "end": record.created})

    def steps(self, sampler: Sampler) -> dict:
        """step -> seconds, rows, peak RSS over the step's tables (e.g. staging = 4 staging models + marts.prices)."""
        out: dict[str, dict] = {}
        for r in self.records:
            step = out.setdefault(r["step"], {"seconds": 0.0, "rows": 0, "peak_rss_mb": 0.0})
            step["seconds"] += r["seconds"]
            step["rows"] += r["rows"] or 0
            step["peak_rss_mb"] = max(step["peak_rss_mb"], sampler.peak_mb(r["end"] - r["seconds"], r["end"]))
        return out


def sample_cpu(pid: int, samples: list, stop: threading.Event, every: float = 0.02) -> None:
    """Append (time, CPU seconds so far) of process `pid`, from /proc/<pid>/stat, until `stop` is set."""
    tick = os.sysconf("SC_CLK_TCK")
    while not stop.is_set():
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            samples.append((time.time(), (int(fields[11]) + int(fields[12])) / tick))  # utime + stime
        except (OSError, IndexError, ValueError):  # exited, or not yet readable
            pass
        stop.wait(every)


def cpu_between(samples: list, t0: float, t1: float) -> float:
    """CPU seconds used between t0 and t1, interpolated between the samples around each."""

    def at(t: float) -> float:
        previous = samples[0]
        for sample in samples:
            if sample[0] >= t:
                if sample[0] == previous[0]:
                    return sample[1]
                return previous[1] + (sample[1] - previous[1]) * (t - previous[0]) / (sample[0] - previous[0])
            previous = sample
        return samples[-1][1]

    return max(0.0, at(t1) - at(t0))


def rss_meminfo(field: str) -> int:
    with open("/proc/meminfo") as info:
        for line in info:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def busy_processes() -> str:
    """Other processes using CPU right now (this benchmark's own excluded), from ps."""
    done = subprocess.run(["ps", "-eo", "pid,ppid,pcpu,comm", "--sort=-pcpu"], capture_output=True, text=True)
    mine = {os.getpid()}
    rows = []
    for line in done.stdout.splitlines()[1:]:
        pid, ppid, pcpu, comm = line.split(None, 3)
        if int(pid) in mine or int(ppid) in mine or float(pcpu) < 5:
            continue
        rows.append(f"{comm} {pcpu}%")
    return ", ".join(rows[:6]) or "none above 5 % CPU"


def machine() -> list[str]:
    import duckdb
    import numpy
    import pandas

    cpu = platform.processor()
    with open("/proc/cpuinfo") as info:
        cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    mem = rss_meminfo("MemTotal") / 1024 / 1024
    return [f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GB RAM, {platform.system()} {platform.release()}",
            f"Python {platform.python_version()}, DuckDB {duckdb.__version__} (threads: all cores), "
            f"numpy {numpy.__version__}, pandas {pandas.__version__}"]
