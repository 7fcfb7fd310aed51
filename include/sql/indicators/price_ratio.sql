-- price_ratio: RUT close / SPX close, subject 'RUT/SPX', on the sessions where both indexes closed.
-- Incremental builds: readings dated after $since only, from input rows dated on or after $history_from (both
-- 0001-01-01 in a full build; see lookback_sessions in regime.indicators).
with prices as (

    select date, symbol, close
    from marts.prices
    where symbol in ('RUT', 'SPX') and close is not null and date <= $as_of
        and date >= $history_from

),

pairs as (

    select * from (values ('RUT', 'SPX')) as p (small, large)

),

final as (

    select
        s.date,
        p.small || '/' || p.large as subject,
        s.close / nullif(l.close, 0) as value
    from pairs as p
    inner join prices as s on s.symbol = p.small
    inner join prices as l on l.symbol = p.large and l.date = s.date
    where s.date > $since

)

select * from final
