-- vol_corr_5d: Pearson correlation, over the last 5 sessions, between an index's daily % change and its volatility
-- index's daily net point change; subjects 'RUT~RVX', 'SPX~VIX', 'NDX~VXN'. Sessions are the dates on which both
-- series have a close, and both changes are taken between the same two consecutive common dates (a volatility
-- index published on an exchange holiday does not create a session). No row until 5 changes exist; NULL where
-- either series did not move in the 5 sessions (the correlation is undefined). Clamped to [-1, 1] against
-- rounding. Computed from the lists of the window's 5 changes in date order (two-pass: means, then centred sums),
-- so that a reading depends only on its 5 sessions, not on where the input starts.
-- Incremental builds: readings dated after $since only, from input rows dated on or after $history_from (both
-- 0001-01-01 in a full build; see lookback_sessions in regime.indicators).
with prices as (

    select date, symbol, close
    from marts.prices
    where close is not null and date <= $as_of and date >= $history_from

),

pairs as (

    select * from (values ('RUT', 'RVX'), ('SPX', 'VIX'), ('NDX', 'VXN')) as p (index_symbol, vol_symbol)

),

joined as (

    select
        p.index_symbol || '~' || p.vol_symbol as subject,
        i.date,
        i.close as index_close,
        v.close as vol_close
    from pairs as p
    inner join prices as i on i.symbol = p.index_symbol
    inner join prices as v on v.symbol = p.vol_symbol and v.date = i.date

),

changes as (

    select
        subject,
        date,
        index_close / nullif(lag(index_close) over by_subject, 0) - 1 as index_change,
        vol_close - lag(vol_close) over by_subject as vol_change
    from joined
    window by_subject as (partition by subject order by date)

),

windowed as (

    select
        subject,
        date,
        list(index_change) over last_5 as x,
        list(vol_change) over last_5 as y,
        count(index_change) over last_5 as n_changes
    from changes
    window last_5 as (partition by subject order by date rows between 4 preceding and current row)

),

means as (

    select subject, date, x, y, list_avg(x) as mean_x, list_avg(y) as mean_y
    from windowed
    where n_changes = 5 and date > $since

),

centred as (

    select
        subject,
        date,
        list_min(x) < list_max(x) and list_min(y) < list_max(y) as both_moved,
        list_transform(x, lambda v: v - mean_x) as dx,
        list_transform(y, lambda v: v - mean_y) as dy
    from means

),

final as (

    select
        date,
        subject,
        case
            when both_moved then greatest(-1.0, least(1.0,
                list_sum(list_transform(dx, lambda a, i: a * dy[i]))
                / sqrt(list_sum(list_transform(dx, lambda a: a * a)) * list_sum(list_transform(dy, lambda b: b * b)))
            ))
        end as value
    from centred

)

select * from final
