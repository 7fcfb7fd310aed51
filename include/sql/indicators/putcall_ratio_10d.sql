-- putcall_ratio_10d: the mean of the daily put/call ratios (put volume / call volume) of the product's last 10 rows of
-- staging.options_putcall, per product (total, equity, index): the 10-day moving average analysts quote. No row until
-- 10 rows exist; NULL if one of the 10 days had no calls.
-- Incremental builds: readings dated after $since only, from input rows dated on or after $history_from (see
-- lookback_sessions in regime.indicators).
with volume as (

    select date, product, put_volume::double / nullif(call_volume, 0) as ratio
    from staging.options_putcall
    where date <= $as_of and date >= $history_from

),

windowed as (

    select
        date,
        product,
        avg(ratio) over last_10 as ratio_10d,
        count(ratio) over last_10 as days_with_ratio,
        lag(date, 9) over (partition by product order by date) as window_start
    from volume
    window last_10 as (partition by product order by date rows between 9 preceding and current row)

),

final as (

    select date, product as subject, case when days_with_ratio = 10 then ratio_10d end as value
    from windowed
    where window_start is not null and date > $since

)

select * from final
