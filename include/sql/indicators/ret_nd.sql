-- ret_1d, ret_5d, ret_20d: close-to-close return over $window sessions as a fraction, close / the close $window
-- sessions earlier - 1, per price index (RUT, SPX, NDX, DJX). Sessions are the index's own rows with a close; no row
-- until $window earlier closes exist. One file for the three: the registry binds each one's `window`.
-- Incremental builds: readings dated after $since only, from input rows dated on or after $history_from (both
-- 0001-01-01 in a full build; see lookback_sessions in regime.indicators).
with prices as (

    select date, symbol, close
    from marts.prices
    where symbol in ('RUT', 'SPX', 'NDX', 'DJX') and close is not null and date <= $as_of
        and date >= $history_from

),

lagged as (

    select date, symbol, close, lag(close, $window) over (partition by symbol order by date) as close_before
    from prices

),

final as (

    select date, symbol as subject, close / nullif(close_before, 0) - 1 as value
    from lagged
    where close_before is not null and date > $since

)

select * from final
