-- put_volume_5d: put volume summed over the last 5 sessions present for the underlying (its own last 5 rows
-- of staging.options_volume), per underlying. No row until 5 rows exist; NULL if one of them has no put volume.
-- The sums are intermediate.options_volume_5d's (include/sql/intermediate/), shared with call_volume_5d and
-- call_put_ratio_5d.
-- Incremental builds: the intermediate model holds readings dated after $since only, from input rows dated on or
-- after $history_from (see lookback_sessions in regime.indicators).
with volume_5d as (

    select date, underlying, put_volume_5d
    from intermediate.options_volume_5d

),

final as (

    select date, underlying as subject, put_volume_5d::double as value
    from volume_5d

)

select * from final
