-- staging.options_putcall: Cboe's daily put/call volume per product (total, equity, index) from its history files,
-- as known on the run's as-of date. Volumes are contracts traded on Cboe's exchanges (OCC-cleared volume until
-- 2012-05-31, Cboe's preliminary reported volume after), pc_ratio is puts over calls as Cboe published it (2
-- decimals). The files end on 2019-10-04 (docs/sources.md, "Cboe put/call volume").
with source as (

    select * from read_parquet($options_putcall_glob, hive_partitioning = true, hive_types_autocast = false)
    where date >= $history_from  -- 0001-01-01, but in an incremental update (lake_changes.refresh_staging)

),

final as (

    select
        cast(date as date) as date,
        cast(product as varchar) as product,
        cast(call_volume as bigint) as call_volume,
        cast(put_volume as bigint) as put_volume,
        cast(total_volume as bigint) as total_volume,
        cast(pc_ratio as double) as pc_ratio
    from source
    where cast(date as date) <= $as_of

)

select * from final
