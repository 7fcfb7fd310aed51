-- Alert rule "record": the latest reading of each headline indicator ($headline_indicators) that set a record
-- high or low (marts.extremes), in a series at least $record_min_days old, dated within $max_age_days of the
-- as-of date. The episode starts at the first of the consecutive record readings that end with it.
with readings as (

    select *
    from marts.extremes
    where list_contains($headline_indicators, indicator) and date <= $as_of

),

latest as (

    select indicator, subject, max(date) as date from readings group by indicator, subject

),

last_plain as (

    select indicator, subject, max(date) as plain_date
    from readings
    where not (is_record_high or is_record_low)
    group by indicator, subject

),

episodes as (

    select r.indicator, r.subject, min(r.date) as episode_start
    from readings as r
    left join last_plain as p using (indicator, subject)
    where (r.is_record_high or r.is_record_low) and r.date > coalesce(p.plain_date, date '0001-01-01')
    group by r.indicator, r.subject

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
