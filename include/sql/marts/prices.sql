-- marts.prices: one row per (date, symbol); open/high/low NULL where the source publishes only a close.
with index_prices as (

    select * from staging.index_prices

),

final as (

    select date, symbol, open, high, low, close
    from index_prices
    order by symbol, date

)

select * from final
