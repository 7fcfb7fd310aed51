-- net_pct_oi: CFTC Traders in Financial Futures net position as a fraction of open interest,
-- (long - short) / open_interest, per market and trader class (asset_mgr, lev_money, dealer; spread positions
-- are not counted), subject '<market code>:<class>', e.g. '239742:lev_money'.
-- Point in time: a reading is dated by the report's release_date (the day it became public, even when that day is
-- not a session), never by its report_date, and only reports released on or before $as_of appear. A report counts
-- only if it is the newest report of its market public on its release date: of two reports released the same day
-- (a backlog after a shutdown) the newer is the reading, and a report released after a newer one adds none.
-- Incremental builds: readings dated after $since only (0001-01-01 in a full build); newest_public is a running
-- maximum over every earlier release, so the whole history is read ($history_from is 0001-01-01: lookback None).
with reports as (

    select *
    from staging.cftc_tff
    where release_date is not null and release_date <= $as_of and release_date >= $history_from

),

visible as (

    select
        *,
        max(report_date) over (
            partition by market_code order by release_date range between unbounded preceding and current row
        ) as newest_public
    from reports

),

readings as (

    select * from visible where report_date = newest_public

),

classes as (

    select release_date, market_code, 'asset_mgr' as class, open_interest,
        asset_mgr_positions_long - asset_mgr_positions_short as net
    from readings
    union all
    select release_date, market_code, 'lev_money' as class, open_interest,
        lev_money_positions_long - lev_money_positions_short as net
    from readings
    union all
    select release_date, market_code, 'dealer' as class, open_interest,
        dealer_positions_long_all - dealer_positions_short_all as net
    from readings

),

final as (

    select
        release_date as date,
        market_code || ':' || class as subject,
        net::double / nullif(open_interest, 0) as value
    from classes
    where release_date > $since

)

select * from final
