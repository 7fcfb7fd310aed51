-- Alert rule "label_change": the regime label of the latest session (marts.regime_daily) differs from the
-- session before. The episode is that session: each change is mailed once.
with days as (

    select date, label, lag(label) over (order by date) as previous_label
    from marts.regime_daily
    where date <= $as_of

),

final as (

    select
        date, 'regime_label' as indicator, label as subject, cast(null as double) as value,
        date as episode_start, previous_label
    from days
    where date = (select max(date) from days)
        and previous_label is not null
        and label <> previous_label
        and label not in ('insufficient history')

)

select * from final
