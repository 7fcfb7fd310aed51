-- ret_1d: close-to-close return over 1 session(s) as a fraction, close / the previous session's close - 1, per price index
-- (RUT, SPX, NDX, DJX). Sessions are the index's own rows with a close; no row until 1 earlier closes exist.
with prices as (

    select date, symbol, close
    from marts.prices
    where symbol in ('RUT', 'SPX', 'NDX', 'DJX') and close is not null and date <= $as_of

),

lagged as (

    select date, symbol, close, lag(close, 1) over (partition by symbol order by date) as close_before
    from prices

),

final as (

    select date, symbol as subject, close / nullif(close_before, 0) - 1 as value
    from lagged
    where close_before is not null

)

select * from final
