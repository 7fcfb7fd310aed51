-- etf_flow_5d_pct: an ETF's creation/redemption flow over its last 5 sessions (its own last 5 rows of
-- staging.etf_nav) as a fraction of its assets at the end of the window: sum(flow_usd) / (nav * shares_outstanding)
-- on the last day; 0.01 = inflows of 1 % of assets. No row until 5 flows exist (a ticker's first row has none).
-- The 5-session flows and assets are intermediate.etf_flows_5d's (include/sql/intermediate/), shared with
-- etf_flow_5d_pct_spread.
-- Incremental builds: the intermediate model holds readings dated after $since only, from input rows dated on or
-- after $history_from (see lookback_sessions in regime.indicators).
with flows_5d as (

    select date, ticker, assets, flow_5d
    from intermediate.etf_flows_5d

),

final as (

    select date, ticker as subject, flow_5d / nullif(assets, 0) as value
    from flows_5d

)

select * from final
