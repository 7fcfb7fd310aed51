-- call_put_ratio_5d: call_volume_5d / put_volume_5d per underlying (both summed over the underlying's last 5 rows
-- of staging.options_volume). No row until 5 rows exist; NULL if a volume is missing or there were no puts.
-- Incremental builds: readings dated after $since only, from input rows dated on or after $history_from (both
-- 0001-01-01 in a full build; see lookback_sessions in regime.indicators).
with volume as (

    select date, underlying, call_volume, put_volume
    from staging.options_volume
    where date <= $as_of and date >= $history_from

),

windowed as (

    -- five lags rather than framed sums: one sort, no segment tree (see call_volume_5d.sql)
    select
        date,
        underlying,
        lag(call_volume, 4) over by_date + lag(call_volume, 3) over by_date + lag(call_volume, 2) over by_date
            + lag(call_volume, 1) over by_date + call_volume as call_5d,
        lag(put_volume, 4) over by_date + lag(put_volume, 3) over by_date + lag(put_volume, 2) over by_date
            + lag(put_volume, 1) over by_date + put_volume as put_5d,
        lag(date, 4) over by_date as window_start
    from volume
    window by_date as (partition by underlying order by date)

),

final as (

    select date, underlying as subject, call_5d::double / nullif(put_5d, 0) as value
    from windowed
    where window_start is not null and date > $since

)

select * from final
