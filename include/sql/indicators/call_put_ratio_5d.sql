-- call_put_ratio_5d: call_volume_5d / put_volume_5d per underlying (both summed over the underlying's last 5 rows
-- of staging.options_volume). No row until 5 rows exist; NULL if a volume is missing or there were no puts.
-- The sums are intermediate.options_volume_5d's (include/sql/intermediate/), shared with call_volume_5d and
-- put_volume_5d.
-- Incremental builds: the intermediate model holds readings dated after $since only, from input rows dated on or
-- after $history_from (see lookback_sessions in regime.indicators).
with volume_5d as (

    select date, underlying, call_volume_5d, put_volume_5d
    from intermediate.options_volume_5d

),

final as (

    select date, underlying as subject, call_volume_5d::double / nullif(put_volume_5d, 0) as value
    from volume_5d

)

select * from final
