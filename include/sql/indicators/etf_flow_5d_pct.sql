-- etf_flow_5d_pct: an ETF's creation/redemption flow over its last 5 sessions (its own last 5 rows of
-- staging.etf_nav) as a fraction of its assets at the end of the window: sum(flow_usd) / (nav * shares_outstanding)
-- on the last day; 0.01 = inflows of 1 % of assets. No row until 5 flows exist (a ticker's first row has none).
-- Sums of flows and assets add up lists in date (ticker) order, so that a reading depends only on its rows, not on
-- where the input starts or how rows reach an aggregate.
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
        list_sum(list(flow_usd) over last_5) as flow_5d,
        count(flow_usd) over last_5 as n_flows
    from nav
    window last_5 as (partition by ticker order by date rows between 4 preceding and current row)

),

final as (

    select date, ticker as subject, flow_5d / nullif(assets, 0) as value
    from windowed
    where n_flows = 5 and date > $since

)

select * from final
