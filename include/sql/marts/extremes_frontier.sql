-- internal.extremes_frontier, state of the incremental update of marts.extremes (include/regime/extremes/state.py): per
-- series and side, the readings no later reading is >= (side 'high') or <= (side 'low'), with until NULL, and those
-- the first later reading >= (<=) them came after the horizon (the latest reading's date - MAX_INCREMENTAL_DAYS),
-- with its date as until. The engine finds that next reading (extremes.following); this model names the series.
with frontier as (

    select * from extremes_frontier_engine

),

series as (

    select series_id, indicator, subject from extremes_series_engine

),

final as (

    select
        s.indicator,
        s.subject,
        f.side::varchar as side,
        f.date::date as date,
        f.value::double as value,
        f.until::date as until
    from frontier as f
    inner join series as s using (series_id)

)

select * from final
