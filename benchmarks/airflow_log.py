"""Reading an `airflow dags test` log: each task's span, the time its callable ran, and the parts of
build_validate_publish (imports, the warehouse build, the validation gate). Self-contained (tests/test_dag_daily.py
loads it by path)."""

from __future__ import annotations

import re
from datetime import datetime


def task_times(log: str) -> dict:
    """task -> seconds from '[DAG TEST] starting task_id=' to 'end task', and the seconds its callable ran (from
    the end of the task runner's pre-execute log group to 'Done. Returned value')."""
    stamp = r"^(\S+Z) "
    tasks: dict[str, dict] = {}
    current = None
    for line in log.splitlines():
        m = re.match(stamp + r".*\[DAG TEST\] starting task_id=(\S+)", line)
        if m:
            current = m.group(2)
            tasks[current] = {"start": _ts(m.group(1))}
            continue
        if current is None or not (m := re.match(stamp, line)):
            continue
        t = _ts(m.group(1))
        if "::endgroup::" in line and "work_start" not in tasks[current]:
            tasks[current]["work_start"] = t
        elif "Done. Returned value" in line:
            tasks[current]["work_end"] = t
        elif f"[DAG TEST] end task task_id={current}" in line:
            tasks[current]["end"] = t
        elif (built := re.search(r"\] (full build as of \S+|update from \S+ to \S+),.*? in ([0-9.]+) s \(total\)|"
                                 r"\] (full build as of \S+) in ([0-9.]+) s \(total\)", line)):
            what, seconds = (built.group(1), built.group(2)) if built.group(1) else (built.group(3), built.group(4))
            tasks[current]["warehouse"] = (t, float(seconds), what)
        elif re.search(r"\] published \S+warehouse.duckdb", line):
            tasks[current]["published"] = t
        elif (imported := re.search(r"\] imported the pipeline and the validation gate .*? in ([0-9.]+) s", line)):
            tasks[current]["imports"] = float(imported.group(1))
    out = {}
    for name, t in tasks.items():
        total = t.get("end", t["start"]) - t["start"]
        work = t.get("work_end", 0) - t.get("work_start", 0) if "work_end" in t and "work_start" in t else 0.0
        out[name] = {"start": t["start"], "seconds": total, "work": work, "overhead": total - work}
        if "work_start" in t:
            out[name]["work_start"] = t["work_start"]
        if "warehouse" in t and "published" in t:  # build_validate_publish: imports, the build, the gate
            at, seconds, how = t["warehouse"]
            edges = [("before the build (imports, lock, sweep)", t["work_start"])]
            if "imports" in t:
                edges = [("imports: pipeline, validation gate (Great Expectations)", t["work_start"]),
                         ("lock, sweep", t["work_start"] + t["imports"])]
            edges += [(f"warehouse: {how}", at - seconds), ("validation gate (Great Expectations)", at),
                      ("", t["published"])]
            out[name]["parts"] = {part: {"start": t0, "seconds": t1 - t0}
                                  for (part, t0), (_, t1) in zip(edges, edges[1:], strict=False)}
    first = min((t["start"] for t in tasks.values()), default=0.0)
    last = max((t.get("end", 0.0) for t in tasks.values()), default=0.0)
    out["_span"] = {"first_start": first, "last_end": last}
    return out


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
