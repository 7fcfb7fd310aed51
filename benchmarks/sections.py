"""The benchmark's sections, run from the parent process: each step in a worker process (workers.py), its
figures added as rows of the table (reference and sample mirrors, synthetic history, the panel, Airflow)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

from airflow_workers import FLOOR_DAG, FLOOR_DAG_ID
from plan import (
    BUILD_STEPS,
    DATASETS,
    HISTORY_DAYS,
    HISTORY_SCALES,
    HISTORY_YEARS,
    PANEL,
    ROOT,
    SAMPLE,
    SAMPLE_BEFORE,
    SAMPLE_LAST,
    STEP_NAMES,
    UPDATE_STEPS,
)

WORKERS = Path(__file__).resolve().with_name("workers.py")


class Bench:
    def __init__(self, work: Path):
        self.work = work
        self.rows: list[dict] = []  # the printed table
        self.notes: list[str] = []
        self.results: dict = {}

    def run(self, step: str, data: Path, env: dict | None = None, **args) -> dict:
        settings_env = {"REGIME_DATA_DIR": str(data), "REGIME_SOURCE": "mirror", "PYTHONUNBUFFERED": "1",
                        **(env or {})}
        cmd = [sys.executable, str(WORKERS), step, json.dumps(args, default=str)]
        done = subprocess.run(cmd, env={**os.environ, **settings_env}, capture_output=True, text=True, cwd=ROOT)
        if done.returncode != 0:
            raise RuntimeError(f"step {step} {args} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def add(self, section: str, step: str, rows, seconds, rss=None, cpu=None, ratio=None, indent: bool = False):
        self.rows.append({"section": section, "step": ("  " if indent else "") + step, "rows": rows,
                          "seconds": seconds, "cpu": cpu, "rss": rss, "ratio": ratio})

    def add_result(self, section: str, step: str, result: dict, parts=(), rows_key: str = "rows"):
        self.add(section, step, result.get(rows_key), result["seconds"], result.get("peak_rss_mb"),
                 result.get("cpu_seconds"))
        for part in parts:
            s = result["steps"].get(part)
            if s:
                name = STEP_NAMES.get(part, part)
                if part == "staging" and "check" in result["steps"]:
                    name = "staging: lake journals read (or lake compared), new rows applied"
                self.add(section, name, s.get("rows") or None, s["seconds"], s.get("peak_rss_mb"), indent=True)

    def add_gate(self, section: str, step: str, gate: dict) -> None:
        """A gate's own rows: the gate (rows handed to GX; read and prepare + validate + Data Docs), GX's import and
        the Data Docs apart."""
        self.add(section, f"{step} (rows validated)", gate["rows"], gate["seconds"], gate["peak_rss_mb"],
                 gate["gate_cpu"])
        for name in ("read and prepare", "validate (GX)", "Data Docs"):
            part = gate["steps"].get(name)
            if part:
                self.add(section, f"gate: {name}", None, part["seconds"], part["peak_rss_mb"], indent=True)
        self.add(section, "GX import (once per process, not in the gate's figure)", None, gate["import_seconds"],
                 gate["steps"].get("GX import", {}).get("peak_rss_mb"), gate["import_cpu"], indent=True)

    # ---------------------------------------------------------------- sections

    def mirror(self, section: str, mirror: Path, last: date, before: date) -> None:
        data = self.work / section
        env = {"REGIME_MIRROR_DIR": str(mirror)}
        ingest = self.run("ingest", data, env, as_of=last)
        self.add_result(section, "ingest, 4 sources (lake rows)", ingest)
        full = self.run("build", data, env, as_of=last)
        self.add_result(section, f"full rebuild as of {last} (readings)", full, BUILD_STEPS)
        full_gate = self.run("gate", data, env, path=full["path"], as_of=last)
        self.add_gate(section, "gate of the full rebuild", full_gate)
        self.run("build", data, env, as_of=before, publish=True)
        update = self.run("update", data, env, as_of=last, publish=False)
        self.add_result(section, f"incremental update {before} -> {last} (readings recomputed)", update,
                        UPDATE_STEPS)
        gate = self.run("gate", data, env, path=update["path"], as_of=last, publish=True)
        self.add_gate(section, "gate of the update", gate)
        self.add(section, "daily update including its gate (update + gate + Data Docs)", None,
                 update["seconds"] + gate["seconds"], cpu=update["cpu_seconds"] + gate["gate_cpu"])
        same = self.run("compare", data, env, a=full["path"], b=str(data / "warehouse.duckdb"))["differences"]
        self.notes.append(f"{section}: update == full rebuild: {same or 'yes, every table'}")
        self.results[section] = {"ingest": ingest, "full": full, "update": update, "differences": same,
                                 "full_gate": full_gate, "gate": gate}

    def history(self) -> None:
        rows = []
        for scale in HISTORY_SCALES:
            data = self.work / f"history-{scale}x"
            env = {"REGIME_MIRROR_DIR": str(data / "no-mirror")}
            lake = self.run("history", data, env, years=HISTORY_YEARS * scale)
            full = self.run("build", data, env, as_of=HISTORY_DAYS[0])
            full_gate = self.run("gate", data, env, path=full["path"], as_of=HISTORY_DAYS[0], publish=True)
            runs = []
            for day in HISTORY_DAYS[1:]:  # update, gate, publish: as pipeline.build_validate_publish
                update = self.run("update", data, env, as_of=day, publish=False)
                update["gate"] = self.run("gate", data, env, path=update["path"], as_of=day, publish=True)
                update["daily"] = update["seconds"] + update["gate"]["seconds"]
                runs.append(update)
            first, *updates = runs
            if first["base"] != "copy" or any(u["base"] != "spare" for u in updates):
                raise AssertionError(f"updates started from {[u['base'] for u in (first, *updates)]}")
            median = sorted(updates, key=lambda u: u["seconds"])[len(updates) // 2]
            daily = sorted(updates, key=lambda u: u["daily"])[len(updates) // 2]
            label = f"{scale}x ({HISTORY_YEARS * scale} y)"
            self.add("history", f"{label}: lake write (rows)", lake["rows"], lake["seconds"], lake["peak_rss_mb"],
                     lake["cpu_seconds"])
            self.add_result("history", f"{label}: full rebuild (readings)", full, BUILD_STEPS)
            self.add_gate("history", f"{label}: gate of the full rebuild", full_gate)
            for run, name in ((median, f"one-day update from the spare, median of {len(updates)}"),
                              (first, "one-day update from a copy (the first after a full build)")):
                self.add("history", f"{label}: {name} (readings recomputed)", run["rows"], run["seconds"],
                         run["peak_rss_mb"], run["cpu_seconds"])
                for part in UPDATE_STEPS:
                    s = run["steps"].get(part)
                    if s and (run is median or part in ("copy", "checkpoint")):
                        self.add("history", STEP_NAMES[part], s.get("rows") or None, s["seconds"],
                                 s.get("peak_rss_mb"), indent=True)
            self.add_gate("history", f"{label}: gate of that update (the median's)", median["gate"])
            self.add("history", f"{label}: daily update including its gate, median of {len(updates)}", None,
                     daily["daily"], max(daily["peak_rss_mb"], daily["gate"]["peak_rss_mb"]),
                     daily["cpu_seconds"] + daily["gate"]["gate_cpu"])
            if scale == HISTORY_SCALES[0]:
                check = self.run("build", data, env, as_of=HISTORY_DAYS[-1])
                same = self.run("compare", data, env, a=check["path"], b=str(data / "warehouse.duckdb"))
                self.notes.append(f"history 1x: {len(HISTORY_DAYS) - 1} chained updates == full rebuild as of "
                                  f"{HISTORY_DAYS[-1]}: "
                                  f"{'yes, every table' if not same['differences'] else same['differences']}")
            rows.append({"scale": scale, "history_readings": median["history"], "full": full["seconds"],
                         "full_cpu": full["cpu_seconds"], "full_gate": full_gate["seconds"],
                         "full_gate_cpu": full_gate["gate_cpu"], "full_gate_rss": full_gate["peak_rss_mb"],
                         "gate": median["gate"]["seconds"], "gate_cpu": median["gate"]["gate_cpu"],
                         "gate_rss": median["gate"]["peak_rss_mb"], "update_cpu": median["cpu_seconds"],
                         "daily": daily["daily"], "daily_cpu": daily["cpu_seconds"] + daily["gate"]["gate_cpu"],
                         "dailies": [u["daily"] for u in updates],
                         "update": median["seconds"], "updates": [u["seconds"] for u in updates],
                         "steps": median["steps"], "size_mb": median["size_mb"], "full_steps": full["steps"],
                         "first": first["seconds"], "first_steps": first["steps"]})
            shutil.rmtree(data, ignore_errors=True)
        self.results["history"] = rows

    def panel(self) -> None:
        import synth

        data = self.work / "panel"
        names, funds = synth.panel_names(PANEL["underlyings"], PANEL["etfs"])
        env = {"REGIME_MIRROR_DIR": str(data / "no-mirror"), "REGIME_SMALL_CAPS": ",".join(funds[:len(funds) // 2]),
               "REGIME_LARGE_CAPS": ",".join(funds[len(funds) // 2:])}
        lake = self.run("panel_lake", data, env)
        self.add("panel", "bulk write to the lake (rows)", lake["rows"], lake["seconds"], lake["peak_rss_mb"],
                 lake["cpu_seconds"])
        full = self.run("build", data, env, as_of=HISTORY_DAYS[-1])
        queries = self.run("panel_queries", data, env, path=full["path"])
        held = self.run("panel_queries", data, env, path=full["path"], hold=True)
        pandas = self.run("pandas", data, env, path=full["path"])
        full_gate = self.run("gate", data, env, path=full["path"], as_of=HISTORY_DAYS[-1])
        st, ind = full["steps"]["staging"], full["steps"]["indicators"]
        read, compute = pandas["steps"]["read"], pandas["steps"]["compute"]
        numbers, frame = pandas["steps"]["values"], pandas["steps"]["long_frame"]
        self.add_result("panel", "full build (readings)", full)
        self.add("panel", "staging (lake rows read and stored)", st["rows"], st["seconds"], st["peak_rss_mb"],
                 ratio=read["seconds"] / st["seconds"], indent=True)
        self.add("panel", "indicators (readings computed and stored)", ind["rows"], ind["seconds"],
                 ind["peak_rss_mb"], ratio=compute["seconds"] / ind["seconds"], indent=True)
        for part in ("extremes", "regime_daily", "analogs"):
            s = full["steps"][part]
            self.add("panel", STEP_NAMES[part], s["rows"], s["seconds"], s["peak_rss_mb"], indent=True)
        self.add_gate("panel", "gate of the full build", full_gate)
        both = st["seconds"] + ind["seconds"]
        self.add("panel", "lake -> readings, DuckDB (staging + indicators)", ind["rows"], both,
                 max(st["peak_rss_mb"], ind["peak_rss_mb"]), ratio=pandas["seconds"] / both)
        self.add("panel", "the 5 indicator queries (+ 2 intermediate models), readings counted", queries["rows"],
                 queries["seconds"], queries["peak_rss_mb"], queries["cpu_seconds"],
                 ratio=numbers["seconds"] / queries["seconds"])
        self.add("panel", "the same, readings held in one in-memory table", held["rows"], held["seconds"],
                 held["peak_rss_mb"], held["cpu_seconds"], ratio=compute["seconds"] / held["seconds"])
        self.add("panel", "pandas reference: read the lake + compute", pandas["rows"], pandas["seconds"],
                 max(read["peak_rss_mb"], compute["peak_rss_mb"]), ratio=1.0)
        self.add("panel", "read (pd.read_parquet)", lake["by_dataset"]["options_volume"]
                 + lake["by_dataset"]["etf_nav"], read["seconds"], read["peak_rss_mb"], indent=True)
        self.add("panel", "compute (groupby + rolling, then the long frame)", pandas["rows"], compute["seconds"],
                 compute["peak_rss_mb"], indent=True)
        self.add("panel", "  values (sort, groupby + rolling)", pandas["rows"], numbers["seconds"],
                 numbers["peak_rss_mb"], indent=True)
        self.add("panel", "  long frame (date, indicator, subject, value)", pandas["rows"], frame["seconds"],
                 frame["peak_rss_mb"], indent=True)
        self.notes.append("panel: ratios compare like with like: the counted queries with pandas' values, the readings "
                          "held in memory with pandas' compute (values + long frame), the build's indicators step "
                          "(stored) with pandas' compute")
        self.notes.append(f"panel: pandas reference == SQL readings (rtol 1e-9): yes, {pandas['checked']:,} readings")
        # the daily path on the panel: a full build as of the day before, published (its gate is the one measured
        # above, on the build as of the day after), then a one-day update and its gate
        discard = Path(full["path"])
        discard.unlink(missing_ok=True)
        self.run("build", data, env, as_of=HISTORY_DAYS[-2], publish=True)
        update = self.run("update", data, env, as_of=HISTORY_DAYS[-1], publish=False)
        gate = self.run("gate", data, env, path=update["path"], as_of=HISTORY_DAYS[-1], publish=True)
        self.add_result("panel", f"one-day update {HISTORY_DAYS[-2]} -> {HISTORY_DAYS[-1]} from a copy (readings "
                        "recomputed)", update, UPDATE_STEPS)
        self.add_gate("panel", "gate of that update", gate)
        self.add("panel", "daily update including its gate (update + gate + Data Docs)", None,
                 update["seconds"] + gate["seconds"], max(update["peak_rss_mb"], gate["peak_rss_mb"]),
                 update["cpu_seconds"] + gate["gate_cpu"])
        self.notes.append(f"panel: the full build's gate {full_gate['seconds']:.1f} s, {full_gate['gate_cpu']:.1f} "
                          f"CPU s, peak RSS {full_gate['peak_rss_mb']:,.0f} MB (target < 2 GB: "
                          f"{'met' if full_gate['peak_rss_mb'] < 2048 else 'not met'}); the build "
                          f"{full['seconds']:.1f} s, {full['cpu_seconds']:.1f} CPU s")
        self.results["panel"] = {"lake": lake, "full": full, "full_gate": full_gate, "queries": queries, "held": held,
                                 "pandas": pandas, "update": update, "gate": gate}
        shutil.rmtree(data, ignore_errors=True)

    def bucket(self) -> None:
        import bucket

        bucket.section(self)

    def airflow(self) -> None:
        data = self.work / "airflow"
        home = self.work / "airflow-home"
        home.mkdir(parents=True, exist_ok=True)
        env = {"REGIME_MIRROR_DIR": str(SAMPLE)}
        migrate = self.run("migrate", data, env, home=str(home))
        self.add("airflow", "airflow db migrate (set-up, not in the run)", None, migrate["seconds"],
                 migrate["peak_rss_mb"])
        self.run("publish_day", data, env, as_of=SAMPLE_BEFORE)  # yesterday's run, outside Airflow

        # Airflow's fixed cost, whatever the DAG does: the CLI start-up, and `dags test` of a one-task no-op DAG
        # (its own DAG folder, same home and metadata DB)
        cli = self.run("cli_startup", data, env, home=str(home))
        self.add("airflow", "airflow version: interpreter + import airflow + CLI (median of 3)", None,
                 cli["seconds"], cli["peak_rss_mb"], cli["airflow_cpu_seconds"])
        floor_dags = self.work / "airflow-floor-dags"
        floor_dags.mkdir(parents=True, exist_ok=True)
        (floor_dags / f"{FLOOR_DAG_ID}.py").write_text(FLOOR_DAG)
        floor = self.run("dags_test", data, env, as_of=SAMPLE_LAST, home=str(home), dag_id=FLOOR_DAG_ID,
                         dags_folder=str(floor_dags))
        noop, floor_span = floor["tasks"]["noop"], floor["tasks"]["_span"]
        self.add("airflow", "dags test of a one-task no-op DAG: Airflow's fixed floor", None, floor["seconds"],
                 floor["peak_rss_mb"], floor["airflow_cpu_seconds"])
        self.add("airflow", "before the task (CLI start, DAG parse + sync x2, run created)", None,
                 floor_span["before"], cpu=floor_span["before_cpu"], indent=True)
        self.add("airflow", f"noop: Airflow {noop['overhead']:.1f} s (in-process Execution API start)", None,
                 noop["seconds"], cpu=noop["cpu"], indent=True)
        self.add("airflow", "after the task (run finished -> exit: interpreter teardown)", None,
                 floor_span["after"], cpu=floor_span["after_cpu"], indent=True)

        run = self.run("dags_test", data, env, as_of=SAMPLE_LAST, home=str(home))
        tasks = {k: v for k, v in run["tasks"].items() if not k.startswith("_")}
        span = run["tasks"]["_span"]
        work, work_cpu = sum(t["work"] for t in tasks.values()), sum(t["work_cpu"] for t in tasks.values())
        run_cpu, floor_cpu = run["airflow_cpu_seconds"], floor["airflow_cpu_seconds"]
        self.add("airflow", f"dags test regime_daily {SAMPLE_LAST}: {len(tasks)} tasks, end to end", None,
                 run["seconds"], run["peak_rss_mb"], run_cpu)
        self.add("airflow", "before the first task (CLI start, DAG parse + sync x2, run created)", None,
                 span["before"], cpu=span["before_cpu"], indent=True)
        for i, (name, t) in enumerate(tasks.items()):
            self.add("airflow", f"{name}: task code {t['work']:.1f} s ({t['work_cpu']:.1f} CPU s) + Airflow "
                     f"{t['overhead']:.1f} s" + (" (Execution API start)" if i == 0 else ""), None, t["seconds"],
                     cpu=t["cpu"], indent=True)
            for part, p in t.get("parts", {}).items():
                self.add("airflow", f"  {part}", None, p["seconds"], cpu=p["cpu"], indent=True)
        self.add("airflow", "after the last task (run finished -> exit: interpreter teardown)", None, span["after"],
                 cpu=span["after_cpu"], indent=True)
        beyond, beyond_cpu = run["seconds"] - floor["seconds"], run_cpu - floor_cpu
        self.add("airflow", f"the run less the floor: task code {work:.1f} s ({work_cpu:.1f} CPU s) + the rest",
                 None, beyond, cpu=beyond_cpu)

        def rest(span_, tasks_):  # CPU s: before the first task, Airflow's share of the tasks, after the last
            return span_["before_cpu"], sum(t["cpu"] - t["work_cpu"] for t in tasks_.values()), span_["after_cpu"]

        ours, theirs = rest(span, tasks), rest(floor_span, {"noop": noop})
        self.notes.append(f"airflow: task code {work:.1f} s of {run['seconds']:.1f} s end to end "
                          f"({100 * work / run['seconds']:.0f} %), {work_cpu:.1f} of {run_cpu:.1f} CPU s "
                          f"({100 * work_cpu / run_cpu:.0f} %); {run['mails']} alert mail(s) caught")
        self.notes.append(
            f"airflow: fixed floor (`dags test` of a no-op DAG, same home) {floor['seconds']:.1f} s, {floor_cpu:.1f} "
            f"CPU s: {theirs[0]:.1f} before its task, {theirs[1]:.1f} starting it (the in-process Execution API), "
            f"{theirs[2]:.1f} after it (interpreter teardown); `airflow version` alone {cli['seconds']:.1f} s, "
            f"{cli['airflow_cpu_seconds']:.1f} CPU s")
        self.notes.append(
            f"airflow: the run less the floor {beyond:.1f} s, {beyond_cpu:.1f} CPU s, of which task code "
            f"{work:.1f} s ({100 * work / beyond:.0f} %), {work_cpu:.1f} CPU s ({100 * work_cpu / beyond_cpu:.0f} %)."
            f" The rest, CPU s over the floor's: before the first task {ours[0] - theirs[0]:+.1f}, Airflow's share of"
            f" the tasks {ours[1] - theirs[1]:+.1f} ({len(tasks)} tasks, not 1), after the last "
            f"{ours[2] - theirs[2]:+.1f} (teardown of the task libraries' modules)")
        self.results["airflow"] = {"migrate": migrate, "cli_startup": cli, "floor": floor, "run": run,
                                   "split": self.airflow_split(home, env, floor)}

    def airflow_split(self, home: Path, env: dict, floor: dict) -> dict:
        """The other daily DAGs, the production path: the four ingest DAGs (one source each, on its own NYSE
        timetable) and then regime_transform (triggered by their lake Assets), on a data folder of their own where
        yesterday's warehouse was published."""
        data = self.work / "airflow-split"
        self.run("publish_day", data, env, as_of=SAMPLE_BEFORE)
        runs, total, work_total = {}, 0.0, 0.0
        for dag_id in (*(f"ingest_{name}" for name in DATASETS), "regime_transform"):
            run = self.run("dags_test", data, env, as_of=SAMPLE_LAST, home=str(home), dag_id=dag_id)
            tasks = {k: v for k, v in run["tasks"].items() if not k.startswith("_")}
            work = sum(t["work"] for t in tasks.values())
            names = ", ".join(f"{name} {t['work']:.1f} s" for name, t in tasks.items())
            self.add("airflow", f"dags test {dag_id} {SAMPLE_LAST}: {len(tasks)} task(s), end to end", None,
                     run["seconds"], run["peak_rss_mb"], run["airflow_cpu_seconds"])
            self.add("airflow", f"task code: {names}; beyond the floor "
                     f"{run['seconds'] - floor['seconds']:.1f} s", None, work, indent=True)
            runs[dag_id], total, work_total = run, total + run["seconds"], work_total + work
        self.notes.append(f"airflow: the split daily path (4 ingest DAGs, then regime_transform) {total:.1f} s in 5"
                          f" `dags test` runs, of which task code {work_total:.1f} s and 5 x the floor"
                          f" {5 * floor['seconds']:.1f} s; under a running scheduler the floor is paid once per"
                          " server start, not per run")
        return runs
