-- intermediate.options_volume_5d: call and put volume per underlying, each summed over the last 5 sessions present for
-- the underlying (its own last 5 rows of staging.options_volume). Only rows where 5 rows exist; a sum is NULL if one
-- of its volumes is. Read by call_volume_5d, put_volume_5d and call_put_ratio_5d: one sort of the OCC rows for the
-- three indicators instead of one each (docs/performance.md).
-- Built with the parameters of the indicator that reads it (regime.readings.indicator_queries): readings dated after
-- $since only, from input rows dated on or after $history_from (both 0001-01-01 in a full build).
with volume as (

    select date, underlying, call_volume, put_volume
    from staging.options_volume
    where date <= $as_of and date >= $history_from

),

windowed as (

    -- five lags rather than framed sums: one sort, no segment tree (about half the CPU on 10 M rows); a sum is NULL
    -- if a volume is, and lag(date, 4) says whether 5 rows exist
    select
        date,
        underlying,
        lag(call_volume, 4) over by_date + lag(call_volume, 3) over by_date + lag(call_volume, 2) over by_date
            + lag(call_volume, 1) over by_date + call_volume as call_volume_5d,
        lag(put_volume, 4) over by_date + lag(put_volume, 3) over by_date + lag(put_volume, 2) over by_date
            + lag(put_volume, 1) over by_date + put_volume as put_volume_5d,
        lag(date, 4) over by_date as window_start
    from volume
    window by_date as (partition by underlying order by date)

),

final as (

    select date, underlying, call_volume_5d, put_volume_5d
    from windowed
    where window_start is not null and date > $since

)

select * from final
