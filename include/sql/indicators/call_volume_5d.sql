-- call_volume_5d: call volume summed over the last 5 sessions present for the underlying (its own last 5 rows
-- of staging.options_volume), per underlying. No row until 5 rows exist; NULL if one of them has no call volume.
-- Incremental builds: readings dated after $since only, from input rows dated on or after $history_from (both
-- 0001-01-01 in a full build; see lookback_sessions in regime.indicators).
with volume as (

    select date, underlying, call_volume
    from staging.options_volume
    where date <= $as_of and date >= $history_from

),

windowed as (

    select
        date,
        underlying,
        sum(call_volume) over last_5 as volume_5d,
        count(call_volume) over last_5 as n_volumes,
        count(*) over last_5 as n_sessions
    from volume
    window last_5 as (partition by underlying order by date rows between 4 preceding and current row)

),

final as (

    select date, underlying as subject, case when n_volumes = 5 then volume_5d::double end as value
    from windowed
    where n_sessions = 5 and date > $since

)

select * from final
