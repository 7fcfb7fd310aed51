-- etf_flow_5d_pct_spread: small-cap minus large-cap ETF flows, subject 'small-large':
-- sum of the small caps' 5-session flows / sum of their assets - the same for the large caps, where a side is the
-- ETFs of $small_caps / $large_caps that have a complete 5-flow window that day (as in etf_flow_5d_pct, assets at
-- the end of the window). No row on a day when a side has no such ETF.
-- Sums of flows add up in date order (across ETFs, lists in ticker order), so that a reading depends only on its
-- rows, not on where the input starts or how rows reach an aggregate.
-- Incremental builds: readings dated after $since only, from input rows dated on or after $history_from (both
-- 0001-01-01 in a full build; see lookback_sessions in regime.indicators).
with nav as (

    select date, ticker, nav, shares_outstanding, flow_usd
    from staging.etf_nav
    where date <= $as_of and date >= $history_from

),

sides as (

    select unnest($small_caps::varchar[]) as ticker, 'small' as side
    union all
    select unnest($large_caps::varchar[]) as ticker, 'large' as side

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

by_side as (

    select
        w.date,
        s.side,
        list_sum(list(w.flow_5d order by w.ticker)) as flow_5d,
        list_sum(list(w.assets order by w.ticker)) as assets
    from windowed as w
    inner join sides as s using (ticker)
    where w.flow_5d is not null and w.assets is not null and w.date > $since
    group by w.date, s.side

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
