"""The scheduled path under a real scheduler: the ingest DAGs for a past session lead to exactly one
`regime_transform` build once index prices, options volume and ETF NAV are all in (partitioned Assets); a run meant
for the latest session on stale data fails at once with one mail; an asset-triggered build that fails mails too.
Nothing of these touches the published warehouse when it fails."""

from __future__ import annotations

import hashlib
import shutil
import time

import duckdb
import pytest

from .stack import wait_until

pytestmark = pytest.mark.e2e

SESSION_DAGS = ("ingest_index_prices", "ingest_options_volume", "ingest_etf_nav")
# read by a session's build, never awaited: the weekly CFTC report and Cboe's put/call archive (ended 2019-10-04)
OTHER_DAGS = ("ingest_cftc_tff", "ingest_options_putcall")
OPERATORS = "operators@example.test"


def _digest(path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def _transform_runs(stack) -> list[dict]:
    return stack.api("GET", "dags/regime_transform/dagRuns", params={"limit": 100})["dag_runs"]


def _trigger_session(stack, dag_id: str, session: str) -> dict:
    """A run of an ingest DAG for `session` with that logical date (as a backfill or a trigger for a past session
    gives), waited for."""
    run = stack.api("POST", f"dags/{dag_id}/dagRuns", json={"logical_date": f"{session}T00:00:00Z"})
    return stack.wait_for_run(dag_id, run["dag_run_id"], timeout=300)


def _published_as_of(stack) -> str:
    con = duckdb.connect(str(stack.data_dir / "warehouse.duckdb"), read_only=True)
    try:
        return str(con.execute("select max(date) from marts.prices").fetchone()[0])
    finally:
        con.close()


def _putcall_readings(stack) -> int:
    con = duckdb.connect(str(stack.data_dir / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute("select count(*) from marts.indicators where indicator like 'putcall%'").fetchone()[0]
    finally:
        con.close()


@pytest.fixture
def session_dags(stack):
    """regime_transform and the ingest DAGs unpaused for the test, paused again after it (unpaused, an
    ingest DAG may also start its own latest session on its timetable: the tests look at their sessions only)."""
    dags = ("regime_transform", *OTHER_DAGS, *SESSION_DAGS)
    for dag_id in dags:
        stack.unpause(dag_id)
    yield
    for dag_id in dags:
        stack.api("PATCH", f"dags/{dag_id}", json={"is_paused": True})


def test_exactly_one_build_per_session_once_its_sources_are_in(stack, session_dags):
    session = "2024-07-16"
    t0 = time.monotonic()
    # the weekly CFTC report and the put/call archive first: read by the session's build, but never awaited nor a
    # trigger by themselves
    for dag_id in (*OTHER_DAGS, *SESSION_DAGS):
        run = _trigger_session(stack, dag_id, session)
        assert run["state"] == "success", stack.describe(dag_id, run["dag_run_id"])
        if dag_id != SESSION_DAGS[-1]:
            time.sleep(3)  # a few scheduler loops: a build must not start before all three sources are in
            assert not [r for r in _transform_runs(stack) if r.get("partition_key") == session], \
                f"regime_transform started for {session} before {SESSION_DAGS[-1]} was in"
    ingests_s = time.monotonic() - t0

    built = wait_until(f"regime_transform runs for {session}", lambda: [
        r for r in _transform_runs(stack) if r.get("partition_key") == session], timeout=120, interval=1)
    assert len(built) == 1
    run = stack.wait_for_run("regime_transform", built[0]["dag_run_id"], timeout=300)
    assert run["state"] == "success", stack.describe("regime_transform", run["dag_run_id"])
    assert run["run_type"] == "asset_triggered"
    assert _published_as_of(stack) == session
    assert _putcall_readings(stack) > 0  # the archive landed by its own DAG is in the session's build

    # the same source again for the session (a rerun, or regime_daily's ingests) does not rebuild it alone
    rerun = stack.api("POST", "dags/ingest_index_prices/dagRuns",
                      json={"logical_date": None, "conf": {"as_of": session}})
    assert stack.wait_for_run("ingest_index_prices", rerun["dag_run_id"], timeout=300)["state"] == "success"
    time.sleep(5)
    runs = _transform_runs(stack)
    assert len([r for r in runs if r.get("partition_key") == session]) == 1
    # regime_daily's runs (earlier tests of this stack) build in their own run: they never start regime_transform
    assert all(r["run_type"] == "asset_triggered" and r.get("partition_key") for r in runs), runs
    tis = stack.task_instances("regime_transform", run["dag_run_id"])
    stack.metrics["runs"]["session_2024-07-16"] = {
        "run_id": run["dag_run_id"], "state": run["state"], "ingests_s": round(ingests_s, 1),
        # from the first ingest's trigger to the end of the session's one build
        "trigger_to_end_s": round(time.monotonic() - t0, 1),
        "start_to_end_s": run["wall_s"],
        "tasks_s": {ti["task_id"]: round(ti["duration"], 1) if ti.get("duration") else None for ti in tis}}


def test_a_run_for_the_latest_session_on_stale_data_fails_at_once_with_one_mail(stack, session_dags):
    warehouse = stack.data_dir / "warehouse.duckdb"
    before_digest = _digest(warehouse)
    before_runs = len(_transform_runs(stack))
    since = len(stack.mail.messages)
    # no date given: the run stands for the latest session (as a scheduled run does); the sample ends in July 2024
    run = stack.api("POST", "dags/ingest_index_prices/dagRuns", json={"logical_date": None})
    run = stack.wait_for_run("ingest_index_prices", run["dag_run_id"], timeout=300)
    assert run["state"] == "failed"
    [ti] = stack.task_instances("ingest_index_prices", run["dag_run_id"])
    assert ti["state"] == "failed" and ti["try_number"] == 1  # no retry: waiting does not make 2024 data fresh

    mails = wait_until("the operators' failure mail", lambda: stack.mails_to(OPERATORS, since), timeout=120)
    time.sleep(3)
    mails = stack.mails_to(OPERATORS, since)
    assert len(mails) == 1, [m["Subject"] for m in mails]
    assert mails[0]["Subject"].startswith("[regime] ingest_index_prices.ingest_index_prices failed")
    body = mails[0].get_body(("html", "plain")).get_content()
    assert "is stale, nothing was published" in body
    assert "index_prices DJX, NDX, RUT, RVX, SPX, VIX end 2024-07-17, before " in body
    assert "REGIME_FRESHNESS_SESSIONS" in body
    assert len(_transform_runs(stack)) == before_runs
    assert _digest(warehouse) == before_digest


def test_an_asset_triggered_build_that_fails_mails_the_operators(stack, session_dags):
    session = "2024-07-15"
    warehouse = stack.data_dir / "warehouse.duckdb"
    cftc = stack.data_dir / "lake" / "cftc_tff"
    aside = stack.data_dir / "cftc_tff.aside"
    before_digest = _digest(warehouse)
    since = len(stack.mail.messages)
    shutil.move(cftc, aside)  # the weekly report missing from the lake: the build refuses to publish without it
    try:
        for dag_id in SESSION_DAGS:
            assert _trigger_session(stack, dag_id, session)["state"] == "success"
        [built] = wait_until(f"regime_transform runs for {session}", lambda: [
            r for r in _transform_runs(stack) if r.get("partition_key") == session], timeout=120, interval=1)
        run = stack.wait_for_run("regime_transform", built["dag_run_id"], timeout=300)
    finally:
        shutil.move(aside, cftc)
    assert run["state"] == "failed" and run["run_type"] == "asset_triggered"
    states = {ti["task_id"]: ti["state"] for ti in stack.task_instances("regime_transform", run["dag_run_id"])}
    assert states["build_validate_publish"] == "failed", states

    wait_until("the operators' failure mail", lambda: stack.mails_to(OPERATORS, since), timeout=120)
    time.sleep(3)
    mails = stack.mails_to(OPERATORS, since)
    assert [m["Subject"].split(" (run ")[0] for m in mails] == \
        ["[regime] regime_transform.build_validate_publish failed"], [m["Subject"] for m in mails]
    body = mails[0].get_body(("html", "plain")).get_content()
    assert "asset_triggered" in body and "cftc_tff: no data on or before 2024-07-15 in the lake" in body
    assert _digest(warehouse) == before_digest
