-- put_volume_5d: put volume summed over the last 5 sessions present for the underlying (its own last 5 rows
-- of staging.options_volume), per underlying. No row until 5 rows exist; NULL if one of them has no put volume.
-- Incremental builds: readings dated after $since only, from input rows dated on or after $history_from (both
-- 0001-01-01 in a full build; see lookback_sessions in regime.indicators).
with volume as (

    select date, underlying, put_volume
    from staging.options_volume
    where date <= $as_of and date >= $history_from

),

windowed as (

    -- five lags rather than a framed sum: one sort, no segment tree (about half the CPU on 10 M rows); the sum is
    -- NULL if a volume is, and lag(date, 4) says whether 5 rows exist
    select
        date,
        underlying,
        lag(put_volume, 4) over by_date + lag(put_volume, 3) over by_date + lag(put_volume, 2) over by_date
            + lag(put_volume, 1) over by_date + put_volume as volume_5d,
        lag(date, 4) over by_date as window_start
    from volume
    window by_date as (partition by underlying order by date)

),

final as (

    select date, underlying as subject, volume_5d::double as value
    from windowed
    where window_start is not null and date > $since

)

select * from final
