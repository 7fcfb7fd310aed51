-- marts.headlines: one to three ranked sentences per day saying what was historic that day, from marts.extremes
-- (headline indicators, $headline_indicators, only). Each reading gives at most one candidate, the strongest kind:
--   'group_record' strictly above (below) every earlier reading of every subject of its indicator of the same kind
--                  (regime_subject_kind: 'index', 'volatility index', 'underlying', 'ETF'; NULL: never compared)
--                  and >= (<=) every same-day reading of them; the group has >= 2 subjects with readings before
--                  that day, the reading's own series is at least $record_min_days old; said with the group's
--                  history start (the earliest history_start of its subjects, or of their prices in marts.prices:
--                  "since records began in 1927", the S&P 500's first close, not its first 50-day z-score)
--   'record'       a record high (low) of its own series, once the series is at least $record_min_days old
--   'long_since'   not a record, and the older of highest_since / lowest_since is more than $headline_since_days
--                  days before the reading (the side whose since-date is older; equal dates: pct_rank >= 0.5 high)
-- Rank within a day: group_record, record, long_since; then the longer history (days since the history start, or
-- since the since-date, for long_since), then the indicator's position in $headline_indicators, then the subject.
-- Ranks 1 to 3 only; a day without a candidate has no row. The sentence is regime.words.headline, called through
-- the Python UDF regime_headline (regime.warehouse.register_words registers it and regime_subject_kind).
-- A group's running maximum (minimum) before a day is read from its series' record rows and first readings only
-- (a series' maximum before d is its latest record high before d, or its first reading): not the whole table.
-- Incremental builds: rows dated after $since only (0001-01-01 in a full build).
with extremes as (

    select *
    from marts.extremes
    where list_contains($headline_indicators::varchar[], indicator) and date <= $as_of

),

-- the rows that move a series' running maximum or minimum: its first reading and its records
turning_points as (

    select date, indicator, subject, value, history_start, is_record_high, is_record_low
    from extremes
    where is_record_high or is_record_low or date = history_start

),

series as (

    select
        indicator,
        subject,
        min(history_start) as history_start,
        regime_subject_kind(indicator, subject) as subject_kind
    from turning_points
    group by indicator, subject

),

grouped_points as (

    select p.*, s.subject_kind
    from turning_points as p
    inner join series as s using (indicator, subject)
    where s.subject_kind is not null

),

-- per group (indicator, subject kind) and day with a turning point: the highest (lowest) reading of the group up to
-- the day before and up to that day
group_days as (

    select
        indicator,
        subject_kind,
        date,
        max(max(value) filter (where is_record_high or date = history_start)) over (
            partition by indicator, subject_kind order by date
            rows between unbounded preceding and 1 preceding
        ) as high_before,
        max(max(value) filter (where is_record_high or date = history_start)) over (
            partition by indicator, subject_kind order by date
        ) as high_through,
        min(min(value) filter (where is_record_low or date = history_start)) over (
            partition by indicator, subject_kind order by date
            rows between unbounded preceding and 1 preceding
        ) as low_before,
        min(min(value) filter (where is_record_low or date = history_start)) over (
            partition by indicator, subject_kind order by date
        ) as low_through
    from grouped_points
    group by indicator, subject_kind, date

),

-- readings beyond everything their group read before and on their day (candidates for a group record)
group_breakers as (

    select p.date, p.indicator, p.subject, p.subject_kind
    from grouped_points as p
    inner join group_days as g using (indicator, subject_kind, date)
    where p.date > $since
        and p.date - p.history_start >= $record_min_days::integer
        and (
            p.is_record_high and p.value > g.high_before and p.value >= g.high_through
            or p.is_record_low and p.value < g.low_before and p.value <= g.low_through
        )

),

-- the first close of each index: an index's records begin with its prices, before its first 50-day z-score
first_closes as (

    select symbol as subject, min(date) as first_close from marts.prices where close is not null group by symbol

),

-- ... whose group has at least two subjects with readings before that day, with its history start
group_records as (

    select
        b.date, b.indicator, b.subject, b.subject_kind,
        least(min(s.history_start), coalesce(min(c.first_close), min(s.history_start))) as group_start
    from group_breakers as b
    inner join series as s
        on s.indicator = b.indicator and s.subject_kind = b.subject_kind and s.history_start < b.date
    left join first_closes as c on c.subject = s.subject
    group by b.date, b.indicator, b.subject, b.subject_kind
    having count(*) >= 2

),

candidates as (

    select
        e.date,
        e.indicator,
        e.subject,
        e.value,
        e.history_start,
        case
            when gr.subject is not null then 'group_record'
            when e.is_record_high or e.is_record_low then 'record'
            else 'long_since'
        end as kind,
        case
            when e.is_record_high then 'high'
            when e.is_record_low then 'low'
            when e.highest_since < e.lowest_since then 'high'
            when e.lowest_since < e.highest_since then 'low'
            when e.pct_rank >= 0.5 then 'high'
            else 'low'
        end as side,
        case
            when not (e.is_record_high or e.is_record_low) then least(e.highest_since, e.lowest_since)
        end as since,
        gr.subject_kind as grp,
        gr.group_start
    from extremes as e
    left join group_records as gr
        on gr.date = e.date and gr.indicator = e.indicator and gr.subject = e.subject
    where e.date > $since
        and (
            gr.subject is not null
            or (e.is_record_high or e.is_record_low) and e.date - e.history_start >= $record_min_days::integer
            or not (e.is_record_high or e.is_record_low)
            and e.date - least(e.highest_since, e.lowest_since) > $headline_since_days::integer
        )

),

ranked as (

    select
        *,
        row_number() over (
            partition by date
            order by
                case kind when 'group_record' then 1 when 'record' then 2 else 3 end,
                date - case kind
                    when 'group_record' then group_start when 'record' then history_start else since
                end desc,
                list_position($headline_indicators::varchar[], indicator),
                subject
        ) as rank
    from candidates

),

final as (

    select
        date,
        rank::integer as rank,
        regime_headline(
            kind, side, indicator, subject, value, date, since,
            case when kind = 'group_record' then group_start else history_start end, grp
        ) as headline,
        indicator,
        subject,
        value
    from ranked
    where rank <= 3

)

select * from final order by date, rank
