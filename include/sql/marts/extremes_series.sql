-- The series of the extremes engine's input (include/sql/marts/extremes_readings.sql): every (indicator, subject)
-- with a finite reading, numbered as there by hash(indicator, subject), and its first date. The engine fetches it
-- once (a few rows per series): extremes.sql and the state models join the engine's output to it by series_id, and
-- its rows without series_id are internal.extremes_series (include/regime/extremes/state.py).
with indicators as (

    select date, indicator, subject, value from marts.indicators

),

final as (

    select hash(indicator, subject) as series_id, indicator, subject, min(date) as history_start
    from indicators
    where value is not null and isfinite(value)
    group by indicator, subject

)

select * from final
