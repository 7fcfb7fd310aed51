-- putcall_call_volume_5d: Cboe call volume summed over the product's last 5 rows of staging.options_putcall, per
-- product (total, equity, index): the long-history counterpart of call_volume_5d (OCC, per underlying, about two
-- years). No row until 5 rows exist.
-- Incremental builds: readings dated after $since only, from input rows dated on or after $history_from (see
-- lookback_sessions in regime.indicators).
with volume as (

    select date, product, call_volume
    from staging.options_putcall
    where date <= $as_of and date >= $history_from

),

windowed as (

    select
        date,
        product,
        lag(call_volume, 4) over by_date + lag(call_volume, 3) over by_date + lag(call_volume, 2) over by_date
            + lag(call_volume, 1) over by_date + call_volume as call_volume_5d
    from volume
    window by_date as (partition by product order by date)

),

final as (

    select date, product as subject, call_volume_5d::double as value
    from windowed
    where call_volume_5d is not null and date > $since

)

select * from final
