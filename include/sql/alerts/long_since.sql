-- Alert rule "long_since": the latest reading of each headline indicator that is the highest (or lowest)
-- since a date more than $since_years years before it ("levels not seen since the dot-com bubble"), dated within
-- $max_age_days of the as-of date. Records are the "record" rule's. The episode starts at the first of the
-- consecutive readings that met the condition, so a run of ever-older since-dates is mailed once.
with readings as (

    select
        *,
        not (is_record_high or is_record_low)
            and (highest_since < date - to_years(cast($since_years as integer))
                 or lowest_since < date - to_years(cast($since_years as integer))) as long_since
    from marts.extremes
    where list_contains($headline_indicators, indicator) and date <= $as_of

),

latest as (

    select indicator, subject, max(date) as date from readings group by indicator, subject

),

last_plain as (

    select indicator, subject, max(date) as plain_date from readings where not long_since group by indicator, subject

),

episodes as (

    select r.indicator, r.subject, min(r.date) as episode_start
    from readings as r
    left join last_plain as p using (indicator, subject)
    where r.long_since and r.date > coalesce(p.plain_date, date '0001-01-01')
    group by r.indicator, r.subject

),

final as (

    select
        r.date, r.indicator, r.subject, r.value, e.episode_start,
        r.history_start, r.highest_since, r.lowest_since, r.is_record_high, r.is_record_low
    from readings as r
    inner join latest as l using (indicator, subject, date)
    inner join episodes as e using (indicator, subject)
    where r.long_since and r.date > $as_of - to_days(cast($max_age_days as integer))

)

select * from final order by indicator, subject
