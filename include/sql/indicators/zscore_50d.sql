-- zscore_50d: (close - mean of the 50 closes ending that day, inclusive) / sample std of those 50 closes.
-- NULL until 50 closes exist (and where the 50 closes are all equal).
-- Mean and standard deviation are taken over the list of the window's closes in date order, so that a reading
-- depends only on its 50 closes, not on where the input starts (a framed avg() adds up pre-summed blocks aligned to
-- the partition's first row: the last bits would differ between a full and an incremental build).
-- Incremental builds: readings dated after $since only, from input rows dated on or after $history_from (both
-- 0001-01-01 in a full build; see lookback_sessions in regime.indicators).
with prices as (

    select date, symbol, close from marts.prices where date >= $history_from

),

windowed as (

    select
        date,
        symbol,
        close,
        list(close) over last_50 as closes_50,
        count(close) over last_50 as n_closes
    from prices
    window last_50 as (partition by symbol order by date rows between 49 preceding and current row)

),

final as (

    select
        date,
        symbol as subject,
        case
            when n_closes = 50 then (close - list_avg(closes_50)) / nullif(list_stddev_samp(closes_50), 0)
        end as value
    from windowed
    where date > $since

)

select * from final
