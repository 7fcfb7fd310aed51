-- Input of the extremes engine (include/regime/extremes/build.py): every finite reading of marts.indicators (NULL and NaN
-- readings are not readings), sorted by series then date. A series is numbered by hash(indicator, subject) — no
-- join needed; include/sql/marts/extremes.sql joins the names back by the same hash, and the engine checks that
-- the table has exactly one row per reading (two series sharing a hash would duplicate rows).
with indicators as (

    select date, indicator, subject, value from marts.indicators

),

final as (

    select hash(indicator, subject) as series_id, date, value
    from indicators
    where value is not null and isfinite(value)

)

select * from final order by series_id, date
