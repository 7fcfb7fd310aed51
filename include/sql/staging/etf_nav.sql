-- staging.etf_nav: daily NAV and shares outstanding per ETF, as known on the run's as-of date, with the
-- day's creation/redemption flow in dollars: (shares - previous shares) * previous NAV, the issuers' own
-- convention (it matches the published fund flows of QQQ on 99.9 % of days within 1 %), with two traps handled
-- (docs/sources.md, shares-outstanding traps):
-- * a k-for-1 split (NAV about 1/k of the previous NAV, k = 2, 3, ..., and shares at least 0.75 k times the
--   previous; a reverse split the other way round): the previous day is restated in the new shares,
--   (shares - previous shares * k) * previous NAV / k. QQQ's 2-for-1 of 2000-03-20 is then Invesco's own
--   $665.2 M, not the $11.2 bn of new "shares" a plain difference gives;
-- * shares outstanding 5 times or a fifth of the (split-restated) previous count: a change of unit or a wrong
--   count (iShares' IVV history has 111,600,000 for 11,600,000 on 2000-10-06), not a flow: NULL.
-- A share count repeated from the previous row (a stale count) gives 0 that day and the next change carries the
-- two days; a missing session puts its flow on the next row: sums over several days keep every creation.
with source as (

    select * from read_parquet($etf_nav_glob, hive_partitioning = true, hive_types_autocast = false)
    where date >= $history_from  -- 0001-01-01, but in an incremental update (lake_changes.refresh_staging)

),

typed as (

    select
        cast(date as date) as date,
        cast(ticker as varchar) as ticker,
        cast(nav as double) as nav,
        cast(shares_outstanding as double) as shares_outstanding
    from source
    where cast(date as date) <= $as_of

),

paired as (

    select
        date,
        ticker,
        nav,
        shares_outstanding,
        lag(nav) over by_ticker as nav_before,
        lag(shares_outstanding) over by_ticker as shares_before
    from typed
    window by_ticker as (partition by ticker order by date)

),

split as (

    select
        *,
        case
            when nav_before / nav >= 1.8 and abs(nav_before / nav / round(nav_before / nav) - 1) <= 0.1
                and shares_outstanding >= 0.75 * round(nav_before / nav) * shares_before
                then round(nav_before / nav)
            when nav / nav_before >= 1.8 and abs(nav / nav_before / round(nav / nav_before) - 1) <= 0.1
                and shares_outstanding * 0.75 * round(nav / nav_before) <= shares_before
                then 1 / round(nav / nav_before)
            else 1
        end as split_factor
    from paired

),

final as (

    select
        date,
        ticker,
        nav,
        shares_outstanding,
        case
            when shares_outstanding >= 5 * shares_before * split_factor
                or 5 * shares_outstanding <= shares_before * split_factor
                or isnan(shares_outstanding) or isnan(shares_before)
                then null
            else (shares_outstanding - shares_before * split_factor) * nav_before / split_factor
        end as flow_usd
    from split

)

select * from final
