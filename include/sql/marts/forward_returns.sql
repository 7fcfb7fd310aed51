-- marts.forward_returns: what followed each close. For each price index ($forward_indexes: RUT, SPX, NDX, DJX), the
-- return from the close of `date` to the close `horizon` sessions later ($forward_horizons: 5, 20, 60), close at the
-- end / close on `date` - 1, where the end is the index's horizon-th later row with a close (its own sessions, as in
-- ret_Nd); and for each pair small/large ($forward_small[i] / $forward_large[i]: RUT/SPX, RUT/NDX) the small index's
-- return minus the large one's, each over its own sessions, on the dates both have one. `end_date` is the session
-- the return ends on (for a pair, the later of its two ends).
-- Point in time: only closes up to $as_of are read, so a return exists only where its end session is <= $as_of.
-- Incremental builds: rows ending after $since only, from input rows dated on or after $history_from (both 0001-01-01
-- in a full build; an update binds $history_from to a date that leaves every index its last 60 sessions up to $since:
-- a return ending after $since starts at most that far back).
with prices as (

    select date, symbol, close
    from marts.prices
    where list_contains($forward_indexes, symbol) and close is not null and date <= $as_of
        and date >= $history_from

),

horizons as (

    select unnest($forward_horizons) as horizon

),

pairs as (

    select unnest($forward_small) as small, unnest($forward_large) as large

),

numbered as (

    select date, symbol, close, row_number() over (partition by symbol order by date) as n
    from prices

),

index_returns as (

    select
        s.date,
        s.symbol as subject,
        h.horizon,
        e.date as end_date,
        e.close / nullif(s.close, 0) - 1 as value
    from numbered as s
    cross join horizons as h
    inner join numbered as e on e.symbol = s.symbol and e.n = s.n + h.horizon

),

pair_returns as (

    select
        s.date,
        p.small || '/' || p.large as subject,
        s.horizon,
        greatest(s.end_date, l.end_date) as end_date,
        s.value - l.value as value
    from pairs as p
    inner join index_returns as s on s.subject = p.small
    inner join index_returns as l on l.subject = p.large and l.date = s.date and l.horizon = s.horizon

),

final as (

    select date, subject, horizon, end_date, value
    from (select * from index_returns union all select * from pair_returns)
    where end_date > $since

)

select * from final
