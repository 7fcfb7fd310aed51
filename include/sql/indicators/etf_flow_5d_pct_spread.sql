-- etf_flow_5d_pct_spread: small-cap minus large-cap ETF flows, subject 'small-large':
-- sum of the small caps' 5-session flows / sum of their assets - the same for the large caps, where a side is the
-- ETFs of $small_caps / $large_caps that have a complete 5-flow window that day (as in etf_flow_5d_pct, assets at
-- the end of the window; both from intermediate.etf_flows_5d). No row on a day when a side has no such ETF.
-- Sums across ETFs add up in ticker order (lists), so that a reading depends only on its rows, not on how rows
-- reach an aggregate.
-- Incremental builds: the intermediate model holds readings dated after $since only, from input rows dated on or
-- after $history_from (see lookback_sessions in regime.indicators).
with flows_5d as (

    select date, ticker, assets, flow_5d
    from intermediate.etf_flows_5d

),

sides as (

    select unnest($small_caps::varchar[]) as ticker, 'small' as side
    union all
    select unnest($large_caps::varchar[]) as ticker, 'large' as side

),

by_side as (

    select
        f.date,
        s.side,
        list_sum(list(f.flow_5d order by f.ticker)) as flow_5d,
        list_sum(list(f.assets order by f.ticker)) as assets
    from flows_5d as f
    inner join sides as s using (ticker)
    where f.assets is not null
    group by f.date, s.side

),

final as (

    select
        small.date,
        'small-large' as subject,
        small.flow_5d / nullif(small.assets, 0) - large.flow_5d / nullif(large.assets, 0) as value
    from by_side as small
    inner join by_side as large on large.date = small.date and large.side = 'large'
    where small.side = 'small'

)

select * from final
