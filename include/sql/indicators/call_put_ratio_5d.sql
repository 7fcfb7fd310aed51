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

    select
        date,
        underlying,
        sum(call_volume) over last_5 as call_5d,
        sum(put_volume) over last_5 as put_5d,
        count(call_volume) over last_5 as n_calls,
        count(put_volume) over last_5 as n_puts,
        count(*) over last_5 as n_sessions
    from volume
    window last_5 as (partition by underlying order by date rows between 4 preceding and current row)

),

final as (

    select
        date,
        underlying as subject,
        case when n_calls = 5 and n_puts = 5 then call_5d::double / nullif(put_5d, 0) end as value
    from windowed
    where n_sessions = 5 and date > $since

)

select * from final
