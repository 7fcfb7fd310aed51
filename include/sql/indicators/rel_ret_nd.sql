-- rel_ret_5d, rel_ret_20d: small-cap minus large-cap return over $window sessions, ret(RUT) - ret(large), for the
-- pairs RUT/SPX and RUT/NDX, on the sessions where both returns exist (each return over its index's own $window
-- earlier closes, as in ret_nd.sql). One file for the two: the registry binds each one's `window`.
-- Incremental builds: readings dated after $since only, from input rows dated on or after $history_from (both
-- 0001-01-01 in a full build; see lookback_sessions in regime.indicators).
with prices as (

    select date, symbol, close
    from marts.prices
    where symbol in ('RUT', 'SPX', 'NDX') and close is not null and date <= $as_of
        and date >= $history_from

),

returns as (

    select date, symbol, close / nullif(lag(close, $window) over (partition by symbol order by date), 0) - 1 as ret
    from prices

),

pairs as (

    select * from (values ('RUT', 'SPX'), ('RUT', 'NDX')) as p (small, large)

),

final as (

    select
        s.date,
        p.small || '/' || p.large as subject,
        s.ret - l.ret as value
    from pairs as p
    inner join returns as s on s.symbol = p.small
    inner join returns as l on l.symbol = p.large and l.date = s.date
    where s.ret is not null and l.ret is not null and s.date > $since

)

select * from final
