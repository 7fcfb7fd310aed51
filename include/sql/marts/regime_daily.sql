-- marts.regime_daily: one row per RUT session (dates of marts.prices for RUT up to $as_of) with the headline
-- readings of that day as columns, the headline records set that day and the regime label.
-- lev_money_net_pct_oi_russell is the latest CFTC reading public on that day (carried forward between releases).
-- records: '; '-separated '<indicator> <subject> high|low' of headline indicators ($headline_indicators) whose
-- reading set a record high or low (marts.extremes) and whose series was at least $record_min_days old; a reading
-- dated on a day that is not a session (a CFTC release on an exchange holiday) counts on the next session. NULL: none.
-- label, first matching rule (thresholds are parameters, defaults in regime.indicators.REGIME_RULES):
--   'small-cap squeeze'      RUT zscore_50d >= $squeeze_z and rel_ret_5d RUT/SPX >= $squeeze_rel
--   'small-cap capitulation' RUT zscore_50d <= $capitulation_z and rel_ret_5d RUT/SPX <= $capitulation_rel
--   'stretched'              abs(RUT zscore_50d) or abs(SPX zscore_50d) >= $stretched_z
--   'insufficient history'   neither z-score exists yet
--   'normal'                 otherwise
-- Incremental builds: rows dated after $since only (0001-01-01 in a full build), reading the indicators and
-- extremes dated after the last RUT session up to $since (and the latest CFTC reading before).
with rut as (

    select date from marts.prices where symbol = 'RUT' and date <= $as_of

),

sessions as (

    select distinct date from rut where date > $since

),

bounds as (

    select
        min(date) as first_session,
        coalesce(max(date) filter (where date <= $since), $since) as read_after
    from rut

),

indicators as (

    -- the series `daily` reads, roughly (it picks each pair): not the millions of readings of other subjects
    select date, indicator, subject, value
    from marts.indicators
    where date <= $as_of and date > (select read_after from bounds)
        and indicator in ('zscore_50d', 'rel_ret_5d', 'price_ratio', 'vol_corr_5d', 'call_volume_5d',
                          'etf_flow_5d_pct_spread')
        and subject in ('RUT', 'SPX', 'RUT/SPX', 'RUT~RVX', 'IWM', 'small-large')

),

extremes as (

    select * from marts.extremes where date <= $as_of and date > (select read_after from bounds)

),

daily as (

    select
        date,
        max(value) filter (where indicator = 'zscore_50d' and subject = 'RUT') as rut_zscore_50d,
        max(value) filter (where indicator = 'zscore_50d' and subject = 'SPX') as spx_zscore_50d,
        max(value) filter (where indicator = 'rel_ret_5d' and subject = 'RUT/SPX') as rut_spx_rel_ret_5d,
        max(value) filter (where indicator = 'price_ratio' and subject = 'RUT/SPX') as rut_spx_price_ratio,
        max(value) filter (where indicator = 'vol_corr_5d' and subject = 'RUT~RVX') as rut_rvx_vol_corr_5d,
        max(value) filter (where indicator = 'call_volume_5d' and subject = 'IWM') as iwm_call_volume_5d,
        max(value) filter (
            where indicator = 'etf_flow_5d_pct_spread' and subject = 'small-large'
        ) as etf_flow_5d_pct_spread
    from indicators
    group by date

),

russell_lev_money as (

    select date, value
    from marts.indicators
    where indicator = 'net_pct_oi' and subject = '239742:lev_money' and value is not null and date <= $as_of

),

records as (

    select
        date,
        indicator || ' ' || subject || ' ' || case when is_record_high then 'high' else 'low' end as record
    from extremes
    where (is_record_high or is_record_low)
        and list_contains($headline_indicators::varchar[], indicator)
        and date >= history_start + $record_min_days::integer
        -- records from before RUT's history (SPX goes back to 1927) have no session row to land on
        and date >= (select first_session from bounds)

),

records_by_session as (

    select s.date, string_agg(distinct r.record, '; ' order by r.record) as records
    from records as r
    asof inner join sessions as s on s.date >= r.date
    group by s.date

),

joined as (

    select
        s.date,
        d.rut_zscore_50d,
        d.spx_zscore_50d,
        d.rut_spx_rel_ret_5d,
        d.rut_spx_price_ratio,
        d.rut_rvx_vol_corr_5d,
        d.iwm_call_volume_5d,
        c.value as lev_money_net_pct_oi_russell,
        d.etf_flow_5d_pct_spread,
        r.records
    from sessions as s
    left join daily as d using (date)
    asof left join russell_lev_money as c on c.date <= s.date
    left join records_by_session as r on r.date = s.date

),

final as (

    select
        *,
        case
            when rut_zscore_50d >= $squeeze_z and rut_spx_rel_ret_5d >= $squeeze_rel then 'small-cap squeeze'
            when rut_zscore_50d <= $capitulation_z and rut_spx_rel_ret_5d <= $capitulation_rel
                then 'small-cap capitulation'
            when abs(rut_zscore_50d) >= $stretched_z or abs(spx_zscore_50d) >= $stretched_z then 'stretched'
            when rut_zscore_50d is null and spx_zscore_50d is null then 'insufficient history'
            else 'normal'
        end as label
    from joined

)

select * from final order by date
