-- staging.index_prices: canonical daily index and volatility-index levels from the lake,
-- as known on the run's as-of date.
with source as (

    select * from read_parquet($index_prices_glob, hive_partitioning = true, hive_types_autocast = false)
    where date >= $history_from  -- 0001-01-01, but in an incremental update (lake_changes.refresh_staging)

),

final as (

    select
        cast(date as date) as date,
        cast(symbol as varchar) as symbol,
        cast(open as double) as open,
        cast(high as double) as high,
        cast(low as double) as low,
        cast(close as double) as close
    from source
    where cast(date as date) <= $as_of

)

select * from final
