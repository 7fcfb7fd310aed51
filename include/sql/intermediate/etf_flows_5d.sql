-- intermediate.etf_flows_5d: an ETF's creation/redemption flow over its last 5 sessions (its own last 5 rows of
-- staging.etf_nav), with its assets (nav * shares_outstanding) on the last day. Only rows where the 5 flows exist (a
-- ticker's first row has none). Read by etf_flow_5d_pct and etf_flow_5d_pct_spread: one sort of the NAV rows for both.
-- The flows add up in date order, so that a sum depends only on its rows, not on where the input starts.
-- Built with the parameters of the indicator that reads it (regime.readings.indicator_queries): readings dated after
-- $since only, from input rows dated on or after $history_from (both 0001-01-01 in a full build).
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

    select date, ticker, assets, flow_5d
    from windowed
    where flow_5d is not null and date > $since

)

select * from final
