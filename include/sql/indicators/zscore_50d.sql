-- zscore_50d: (close - mean of the 50 closes ending that day, inclusive) / sample std of those 50 closes.
-- NULL until 50 closes exist (and where the 50 closes are all equal).
with prices as (

    select date, symbol, close from marts.prices

),

windowed as (

    select
        date,
        symbol,
        close,
        avg(close) over last_50 as mean_50,
        stddev_samp(close) over last_50 as std_50,
        count(close) over last_50 as n_closes
    from prices
    window last_50 as (partition by symbol order by date rows between 49 preceding and current row)

),

final as (

    select
        date,
        symbol as subject,
        case when n_closes = 50 then (close - mean_50) / nullif(std_50, 0) end as value
    from windowed

)

select * from final
