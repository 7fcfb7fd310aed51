-- vol_corr_5d: Pearson correlation, over the last 5 sessions, between an index's daily % change and its volatility
-- index's daily net point change; subjects 'RUT~RVX', 'SPX~VIX', 'NDX~VXN'. Sessions are the dates on which both
-- series have a close, and both changes are taken between the same two consecutive common dates (a volatility
-- index published on an exchange holiday does not create a session). No row until 5 changes exist; NULL where
-- either series did not move in the 5 sessions (the correlation is undefined). Clamped to [-1, 1] against
-- rounding.
with prices as (

    select date, symbol, close
    from marts.prices
    where close is not null and date <= $as_of

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
        corr(index_change, vol_change) over last_5 as correlation,
        count(index_change) over last_5 as n_changes
    from changes
    window last_5 as (partition by subject order by date rows between 4 preceding and current row)

),

final as (

    select
        date,
        subject,
        case when not isnan(correlation) then greatest(-1.0, least(1.0, correlation)) end as value
    from windowed
    where n_changes = 5

)

select * from final
