"""The model runner's order (regime.models): what each SQL model reads, from DuckDB's parse of its file; every model
after what it reads; a clear error, naming the files, for a cycle, an unknown table, a mart reading an intermediate
model, a table made twice and SQL that does not parse. And adding a model is adding its file: a new staging,
intermediate and mart model dropped into a copy of include/sql are ordered, built by warehouse.build in that order,
and kept up to date by warehouse.update (equal to a full rebuild)."""

from __future__ import annotations

import logging
import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest

from conftest import SAMPLE_LAST
from regime import SQL_DIR, pipeline, publisher, warehouse
from regime import sql as sqlmod
from regime.models import ModelError, Step, discover, plan, references
from regime.readings import intermediate_inputs


def _tree(root: Path, files: dict[str, str]) -> Path:
    for relpath, text in files.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _position(models) -> dict[str, int]:
    return {m.name: i for i, m in enumerate(models)}


def test_references_are_the_schema_qualified_tables_read():
    sql = """
        -- reads marts.commented_out: not a reference
        with prices as (select * from marts.prices where symbol = 'staging.in_a_string'),
        nested as (select * from (select * from Staging.Etf_Nav) as s)
        select p.date from prices as p
        join intermediate.etf_flows_5d as f on f.date = p.date
        left join nested using (date)
        where p.date > $since and exists (select 1 from marts.extremes as e where e.date = p.date)
        union all select date from staging.cftc_tff
    """
    assert references(sql) == {"marts.prices", "staging.etf_nav", "intermediate.etf_flows_5d", "marts.extremes",
                               "staging.cftc_tff"}
    assert references("select * from read_parquet($glob)") == set()
    with pytest.raises(ModelError, match="syntax error"):
        references("selec 1 from marts.prices")


def test_the_build_order_puts_every_model_after_what_it_reads():
    models = warehouse.build_plan()
    at = _position(models)
    for model in models:
        for ref in model.reads:
            maker = next(m for m in models if ref == m.name or (m.step and ref in m.step.makes))
            assert at[maker.name] < at[model.name], f"{model.name} before {maker.name}, which it reads"
    # every SQL file of staging/intermediate/marts is a model or run by a step, and nothing else is one
    files = {f"{p.parent.name}/{p.name}" for folder in ("staging", "intermediate", "marts")
             for p in (SQL_DIR / folder).glob("*.sql")}
    owned = {str(p.relative_to(SQL_DIR)) for c in warehouse.STEPS for pattern in c.step.files
             for p in SQL_DIR.glob(pattern)}
    assert {m.path for m in models if m.path} == files - owned
    assert {m.name for m in models if m.step} == {"marts.indicators", "marts.extremes", "marts.forward_returns"}
    # what the Python steps read, derived from the SQL they run: the steps land between the SQL models
    assert at["marts.prices"] < at["marts.indicators"] < at["marts.extremes"] < at["marts.regime_daily"]
    assert at["intermediate.options_volume_5d"] < at["marts.indicators"]
    assert at["marts.extremes"] < at["marts.forward_returns"]
    assert {"marts.prices", "marts.extremes", "marts.indicators"} <= models[at["marts.forward_returns"]].reads
    assert "marts.forward_returns" not in models[at["marts.forward_returns"]].reads  # its own table (episodes)


def test_a_cycle_names_its_files(tmp_path):
    root = _tree(tmp_path, {"marts/a.sql": "select * from marts.b", "marts/b.sql": "select * from marts.c",
                            "marts/c.sql": "select * from marts.a", "staging/s.sql": "select 1 as x"})
    with pytest.raises(ModelError, match="cycle") as caught:
        plan(sql_dir=root)
    assert all(f"marts/{name}.sql" in str(caught.value) for name in "abc")
    assert "staging/s.sql" not in str(caught.value)


def test_an_unknown_table_names_the_file_that_reads_it(tmp_path):
    root = _tree(tmp_path, {"staging/s.sql": "select 1 as x",
                            "marts/m.sql": "select * from staging.s join staging.missing using (x)"})
    with pytest.raises(ModelError, match=r"marts/m\.sql reads staging\.missing, which no model makes"):
        plan(sql_dir=root)


def test_a_mart_may_not_read_an_intermediate_model(tmp_path):
    root = _tree(tmp_path, {"staging/s.sql": "select 1 as x", "intermediate/i.sql": "select * from staging.s",
                            "marts/m.sql": "select * from intermediate.i"})
    with pytest.raises(ModelError, match=r"marts/m\.sql reads intermediate\.i: intermediate models are inputs"):
        plan(sql_dir=root)


def test_a_table_made_twice_or_sql_that_does_not_parse_is_named(tmp_path):
    root = _tree(tmp_path, {"marts/m.sql": "select 1 as x", "marts/x.sql": "select 2 as y"})
    with pytest.raises(ModelError, match=r"marts\.m is made twice: by marts/m\.sql and by step marts\.m"):
        plan([Step(("marts.m",), ("marts/x.sql",))], sql_dir=root)
    with pytest.raises(ModelError, match=r"step marts\.s runs marts/none\*\.sql, which is not in"):
        plan([Step(("marts.s",), ("marts/none*.sql",))], sql_dir=root)
    _tree(root, {"marts/bad.sql": "select * frm marts.m"})
    with pytest.raises(ModelError, match=r"marts/bad\.sql: .*syntax error"):
        discover(sql_dir=root)


def test_an_indicator_reads_the_intermediate_models_its_sql_names(tmp_path, monkeypatch):
    root = _tree(tmp_path, {
        "intermediate/a.sql": "select * from intermediate.b",  # a reads b: b is built first
        "intermediate/b.sql": "select * from staging.s",
        "indicators/x.sql": "-- not intermediate.commented\nselect * from intermediate.a join marts.prices using (d)",
        "indicators/y.sql": "select * from intermediate.gone",
    })
    monkeypatch.setattr(sqlmod, "SQL_DIR", root)
    assert intermediate_inputs("indicators/x.sql") == ["b", "a"]
    with pytest.raises(ModelError, match=r"indicators/y\.sql reads intermediate\.gone, which no model makes"):
        intermediate_inputs("indicators/y.sql")


# Three models added as one file each: a staging model of the index lake files' closes, an intermediate model that
# reads it (ordered, built only for an indicator that reads it: none here) and a mart that reads the new staging
# model and marts.regime_daily (so it must wait for the Python steps before regime_daily).
ADDED = {
    "staging/index_closes.sql": """-- staging.index_closes: each index's closes, as known on the run's as-of date.
with source as (
    select * from read_parquet($index_prices_glob, hive_partitioning = true, hive_types_autocast = false)
    where date >= $history_from
),
final as (
    select cast(date as date) as date, cast(symbol as varchar) as symbol, cast(close as double) as close
    from source
    where cast(date as date) <= $as_of and close is not null
)
select * from final
""",
    "intermediate/closes_count.sql": """-- intermediate.closes_count: closes per day.
select date, count(*) as closes from staging.index_closes group by date
""",
    "marts/regime_closes.sql": """-- marts.regime_closes: the number of index closes on each RUT session.
with sessions as (select date from marts.regime_daily),
closes as (select date, symbol from staging.index_closes),
final as (
    select sessions.date, count(closes.symbol) as closes
    from sessions left join closes using (date)
    group by sessions.date
)
select * from final
""",
}


@pytest.fixture
def added(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "sql"
    shutil.copytree(SQL_DIR, root)
    _tree(root, ADDED)
    monkeypatch.setattr(sqlmod, "SQL_DIR", root)
    return root


def test_a_model_added_as_one_file_is_ordered(added):
    at = _position(warehouse.build_plan())
    assert at["staging.index_closes"] < at["intermediate.closes_count"]
    assert at["staging.index_closes"] < at["marts.regime_closes"]
    assert at["marts.extremes"] < at["marts.regime_daily"] < at["marts.regime_closes"]


@pytest.mark.slow
def test_a_model_added_as_one_file_is_built_and_updated(added, settings, caplog):
    from test_incremental import differences

    for dataset in ("index_prices", "options_volume", "cftc_tff", "etf_nav"):
        pipeline.ingest(dataset, SAMPLE_LAST, settings)
    with caplog.at_level(logging.INFO, logger="regime.warehouse"):
        full = warehouse.build(settings, SAMPLE_LAST)
    logged = [r.table for r in caplog.records if hasattr(r, "step")]
    assert logged.index("staging.index_closes") < logged.index("marts.regime_daily") < logged.index(
        "marts.regime_closes")
    assert "intermediate.closes_count" not in logged  # built by the indicators that read it: none
    con = duckdb.connect(str(full), read_only=True)
    try:
        sessions, wrong = con.execute("""
            select count(*), count(*) filter (where r.closes <> (
                select count(*) from staging.index_prices as p where p.date = r.date and p.close is not null))
            from marts.regime_closes as r""").fetchall()[0]
        rut = con.execute("select count(*) from marts.prices where symbol = 'RUT' and close is not null").fetchall()
    finally:
        con.close()
    assert sessions == rut[0][0] > 0 and wrong == 0
    publisher.publish(settings, warehouse.build(settings, date(2024, 7, 16)))
    updated = warehouse.update(settings, SAMPLE_LAST, settings.warehouse_path)
    assert differences(full, updated) == []
