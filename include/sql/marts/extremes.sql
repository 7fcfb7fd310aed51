-- marts.extremes: every finite reading of marts.indicators with its records and "since" dates.
-- history_start: the first date of its (indicator, subject). highest_since / lowest_since: the latest earlier date
-- whose value was >= / <= this one (NULL: nothing earlier was, i.e. a record or the first reading).
-- is_record_high / is_record_low: strictly above / below every earlier value (FALSE for the first reading).
-- pct_rank: readings of the series dated <= this date with value <= this value, over readings dated <= this
-- date, in (0, 1]. The per-reading columns come from the extremes engine (include/regime/extremes/kernels.py), which
-- reads include/sql/marts/extremes_readings.sql; this model puts the names back (by series_id = hash(indicator,
-- subject), from include/sql/marts/extremes_series.sql) and types the table.
with engine as (

    select * from extremes_engine

),

series as (

    select series_id, indicator, subject from extremes_series_engine

),

final as (

    select
        e.date::date as date,
        s.indicator,
        s.subject,
        e.value::double as value,
        e.history_start::date as history_start,
        e.highest_since::date as highest_since,
        e.lowest_since::date as lowest_since,
        e.is_record_high::boolean as is_record_high,
        e.is_record_low::boolean as is_record_low,
        e.pct_rank::double as pct_rank
    from engine as e
    inner join series as s using (series_id)

)

select * from final
