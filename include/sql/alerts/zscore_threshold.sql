-- Alert rule "zscore_threshold": the latest zscore_50d of each index with abs(value) >= $threshold,
-- with the first session of its current episode (consecutive extreme readings), so that one episode
-- is mailed once, and its record flags and since-dates from marts.extremes.
with readings as (

    select date, subject, value
    from marts.indicators
    where indicator = 'zscore_50d' and value is not null and date <= $as_of

),

flagged as (

    select *, abs(value) >= $threshold as extreme from readings

),

latest as (

    select subject, max(date) as date from readings group by subject

),

last_calm as (

    select subject, max(date) as calm_date from flagged where not extreme group by subject

),

episodes as (

    select f.subject, min(f.date) as episode_start
    from flagged as f
    left join last_calm as c using (subject)
    where f.extreme and f.date > coalesce(c.calm_date, date '0001-01-01')
    group by f.subject

),

final as (

    select
        f.date,
        'zscore_50d' as indicator,
        f.subject,
        f.value,
        e.episode_start,
        x.history_start,
        x.highest_since,
        x.lowest_since,
        x.is_record_high,
        x.is_record_low
    from flagged as f
    inner join latest as l using (subject, date)
    inner join episodes as e using (subject)
    left join marts.extremes as x
        on x.indicator = 'zscore_50d' and x.subject = f.subject and x.date = f.date
    where f.extreme

)

select * from final order by abs(value) desc
