-- putcall_ratio: a day's put volume over its call volume on Cboe, per product of Cboe's put/call volume history
-- (total, equity, index), computed from the volumes: Cboe's published ratio is this rounded to 2 decimals (the
-- parser refuses a file where they differ by more). NULL on a day without calls.
-- Incremental builds: readings dated after $since only (a same-day ratio: lookback_sessions 0).
with volume as (

    select date, product, call_volume, put_volume
    from staging.options_putcall
    where date <= $as_of and date >= $history_from

),

final as (

    select date, product as subject, put_volume::double / nullif(call_volume, 0) as value
    from volume
    where date > $since

)

select * from final
