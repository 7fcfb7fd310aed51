-- etf_flow_5d_pct: an ETF's creation/redemption flow over its last 5 sessions (its own last 5 rows of
-- staging.etf_nav) as a fraction of its assets at the end of the window: sum(flow_usd) / (nav * shares_outstanding)
-- on the last day; 0.01 = inflows of 1 % of assets. No row until 5 flows exist (a ticker's first row has none).
-- Sums of flows add up in date order (across ETFs, lists in ticker order), so that a reading depends only on its
-- rows, not on where the input starts or how rows reach an aggregate.
-- Incremental builds: readings dated after $since only, from input rows dated on or after $history_from (both
-- 0001-01-01 in a full build; see lookback_sessions in regime.indicators).
with nav as (

    select date, ticker, nav, shares_outstanding, flow_usd
    from staging.etf_nav
    where date <= $as_of and date >= $history_from

),

windowed as (

    select
        date,
        ticker,
        nav * shares_outstanding as assets,
        -- oldest first; NULL unless the 5 flows exist (lags rather than a framed list: one sort, a third of the CPU)
        lag(flow_usd, 4) over by_date + lag(flow_usd, 3) over by_date + lag(flow_usd, 2) over by_date
            + lag(flow_usd, 1) over by_date + flow_usd as flow_5d
    from nav
    window by_date as (partition by ticker order by date)

),

final as (

    select date, ticker as subject, flow_5d / nullif(assets, 0) as value
    from windowed
    where flow_5d is not null and date > $since

)

select * from final
