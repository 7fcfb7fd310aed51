-- staging.options_volume: daily call and put volume per underlying (OCC volume query), as known on the
-- run's as-of date. OCC counts both sides of a trade, so volumes are about twice the contracts traded.
with source as (

    select * from read_parquet($options_volume_glob, hive_partitioning = true, hive_types_autocast = false)
    where date >= $history_from  -- 0001-01-01, but in an incremental update (lake_changes.refresh_staging)

),

final as (

    select
        cast(date as date) as date,
        cast(underlying as varchar) as underlying,
        cast(call_volume as bigint) as call_volume,
        cast(put_volume as bigint) as put_volume
    from source
    where cast(date as date) <= $as_of

)

select * from final
