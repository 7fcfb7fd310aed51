-- staging.cftc_tff: CFTC Traders in Financial Futures (futures only), one row per report and market,
-- limited to reports already public (release_date) on the run's as-of date. Position columns keep the
-- names of the CFTC public reporting API.
with source as (

    select * from read_parquet($cftc_tff_glob, hive_partitioning = true, hive_types_autocast = false)
    where release_date >= $history_from  -- 0001-01-01, but in an incremental update (lake_changes.refresh_staging)

),

final as (

    select
        cast(report_date as date) as report_date,
        cast(release_date as date) as release_date,
        cast(market_code as varchar) as market_code,
        cast(market_name as varchar) as market_name,
        cast(open_interest as bigint) as open_interest,
        cast(dealer_positions_long_all as bigint) as dealer_positions_long_all,
        cast(dealer_positions_short_all as bigint) as dealer_positions_short_all,
        cast(dealer_positions_spread_all as bigint) as dealer_positions_spread_all,
        cast(asset_mgr_positions_long as bigint) as asset_mgr_positions_long,
        cast(asset_mgr_positions_short as bigint) as asset_mgr_positions_short,
        cast(asset_mgr_positions_spread as bigint) as asset_mgr_positions_spread,
        cast(lev_money_positions_long as bigint) as lev_money_positions_long,
        cast(lev_money_positions_short as bigint) as lev_money_positions_short,
        cast(lev_money_positions_spread as bigint) as lev_money_positions_spread,
        cast(other_rept_positions_long as bigint) as other_rept_positions_long,
        cast(other_rept_positions_short as bigint) as other_rept_positions_short,
        cast(other_rept_positions_spread as bigint) as other_rept_positions_spread,
        cast(nonrept_positions_long_all as bigint) as nonrept_positions_long_all,
        cast(nonrept_positions_short_all as bigint) as nonrept_positions_short_all
    from source
    where cast(release_date as date) <= $as_of

)

select * from final
