-- Alert rule "record": the latest reading of each headline indicator ($headline_indicators) that set a record
-- high or low (marts.extremes), in a series at least $record_min_days old, dated within $max_age_days of the
-- as-of date. The episode starts at the first of the consecutive record readings on the same side (high or low)
-- that end with it: record highs on consecutive readings are one episode; a record low right after a record high
-- (or a high after a low) starts a new one. A reading that is both (a series' first readings) counts as a high.
with readings as (

    select *
    from marts.extremes
    where list_contains($headline_indicators, indicator) and date <= $as_of

),

latest as (

    select r.indicator, r.subject, r.date, r.is_record_high as high_side
    from readings as r
    inner join (select indicator, subject, max(date) as date from readings group by indicator, subject)
        using (indicator, subject, date)

),

sided as (

    select r.*, if(l.high_side, r.is_record_high, r.is_record_low) as on_side
    from readings as r
    inner join latest as l using (indicator, subject)

),

last_off_side as (

    select indicator, subject, max(date) as off_date
    from sided
    where not on_side
    group by indicator, subject

),

episodes as (

    select s.indicator, s.subject, min(s.date) as episode_start
    from sided as s
    left join last_off_side as o using (indicator, subject)
    where s.on_side and s.date > coalesce(o.off_date, date '0001-01-01')
    group by s.indicator, s.subject

),

final as (

    select
        r.date, r.indicator, r.subject, r.value, e.episode_start, r.history_start,
        r.highest_since, r.lowest_since, r.is_record_high, r.is_record_low
    from readings as r
    inner join latest as l using (indicator, subject, date)
    inner join episodes as e using (indicator, subject)
    where (r.is_record_high or r.is_record_low)
        and r.date - r.history_start >= $record_min_days
        and r.date > $as_of - to_days(cast($max_age_days as integer))

)

select * from final order by indicator, subject
