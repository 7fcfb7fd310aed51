-- marts.episodes: runs of consecutive readings of a series beyond a configured threshold, with what followed.
-- The rules are bound as parallel lists (regime.analogs.EPISODE_RULES): $episode_indicators, $episode_subjects (NULL:
-- every subject of the indicator), $episode_kinds, $episode_thresholds, $episode_sides. A reading is beyond when
--   kind 'level':      value >= threshold (side 'high') / value <= threshold (side 'low');
--   kind 'percentile': its pct_rank in its history to date (marts.extremes) >= threshold / <= threshold;
--   kind 'record':     it is a record high / low (marts.extremes; threshold NULL);
-- 'percentile' and 'record' only once the series is $record_min_days old (in its first days every reading is a
-- record). An episode starts on a reading beyond the threshold whose previous reading (the series' previous row in
-- marts.indicators) is not beyond it, or is NULL, or does not exist, and ends on the last consecutive reading beyond it.
-- peak: the most extreme value of the episode on its side (the earliest such date).
-- Forward returns from the close of start_date (marts.forward_returns, NULL where not known as of $as_of): of
-- fwd_index (the subject itself when it is a price index of $forward_indexes, the small side of a pair, else
-- $analog_index) and of fwd_pair (the subject itself when it is a pair of $forward_small/$forward_large, else
-- $analog_pair).
-- It reads the readings dated on or after $episodes_from: 0001-01-01 in a full build; in an update
-- (regime.analogs.update) a date before which no episode can change, the rows of the episodes from there deleted.
with rules as (

    select
        unnest($episode_indicators) as indicator,
        unnest($episode_subjects) as subject,
        unnest($episode_kinds) as kind,
        unnest($episode_thresholds)::double as threshold,
        unnest($episode_sides) as side

),

pairs as (

    select unnest($forward_small) || '/' || unnest($forward_large) as pair

),

indicators as (

    -- the rows of the series some rule names, numbered: consecutive rows of a series have consecutive numbers
    select date, indicator, subject, value, row_number() over (partition by indicator, subject order by date) as n
    from marts.indicators
    where date <= $as_of and date >= $episodes_from and list_contains($episode_indicators, indicator)

),

extremes as (

    -- only the readings that can be beyond a percentile or record rule: a record, or a pct_rank in a tail
    select date, indicator, subject, history_start, is_record_high, is_record_low, pct_rank
    from marts.extremes
    where date <= $as_of and date >= $episodes_from and list_contains($episode_indicators, indicator)
        and (is_record_high or is_record_low
             or pct_rank >= (select min(threshold) from rules where kind = 'percentile' and side = 'high')
             or pct_rank <= (select max(threshold) from rules where kind = 'percentile' and side = 'low'))

),

forward_returns as (

    select date, subject, horizon, value from marts.forward_returns where end_date <= $as_of

),

matched as (

    -- each reading with the rules of its series: those naming its subject, and those of every subject
    select i.*, r.kind, r.threshold, r.side
    from indicators as i
    inner join rules as r on r.indicator = i.indicator and r.subject = i.subject
    union all
    select i.*, r.kind, r.threshold, r.side
    from indicators as i
    inner join rules as r on r.indicator = i.indicator and r.subject is null

),

beyond as (

    -- the readings beyond their rule's threshold (a NULL or non-finite reading never is)
    select m.*
    from matched as m
    left join extremes as x on x.date = m.date and x.indicator = m.indicator and x.subject = m.subject
    where case
        when not isfinite(m.value) then false
        when m.kind = 'level' and m.side = 'high' then m.value >= m.threshold
        when m.kind = 'level' and m.side = 'low' then m.value <= m.threshold
        when x.date - x.history_start < $record_min_days then false
        when m.kind = 'percentile' and m.side = 'high' then x.pct_rank >= m.threshold
        when m.kind = 'percentile' and m.side = 'low' then x.pct_rank <= m.threshold
        when m.kind = 'record' and m.side = 'high' then x.is_record_high
        when m.kind = 'record' and m.side = 'low' then x.is_record_low
    end

),

islands as (

    -- island: the same for the readings of one run of consecutive rows beyond the threshold (their row number in
    -- the series minus their row number among the readings beyond it)
    select *, n - row_number() over (partition by indicator, subject, kind, threshold, side order by date) as island
    from beyond

),

ranked as (

    -- place 1: the run's peak, the most extreme value on its side (the earliest if tied)
    select
        *,
        row_number() over (
            partition by indicator, subject, kind, threshold, side, island
            order by case when side = 'high' then -value else value end, date
        ) as place
    from islands

),

episodes as (

    select
        indicator, subject, kind, threshold, side,
        min(date) as start_date,
        max(date) as end_date,
        count(*) as sessions,
        min(date) filter (where place = 1) as peak_date,
        min(value) filter (where place = 1) as peak_value
    from ranked
    group by indicator, subject, kind, threshold, side, island

),

subjects as (

    -- whose forward returns each subject's episodes carry
    select
        s.subject,
        case
            when list_contains($forward_indexes, s.subject) then s.subject
            when p.pair is not null then split_part(s.subject, '/', 1)
            else $analog_index
        end as fwd_index,
        coalesce(p.pair, $analog_pair) as fwd_pair
    from (select distinct subject from episodes) as s
    left join pairs as p on p.pair = s.subject

),

final as (

    select
        e.indicator, e.subject, e.kind, e.threshold, e.side, e.start_date, e.end_date, e.sessions, e.peak_date,
        e.peak_value,
        e.fwd_index,
        max(f.value) filter (where f.subject = e.fwd_index and f.horizon = 5) as index_fwd_5d,
        max(f.value) filter (where f.subject = e.fwd_index and f.horizon = 20) as index_fwd_20d,
        max(f.value) filter (where f.subject = e.fwd_index and f.horizon = 60) as index_fwd_60d,
        e.fwd_pair,
        max(f.value) filter (where f.subject = e.fwd_pair and f.horizon = 5) as pair_fwd_5d,
        max(f.value) filter (where f.subject = e.fwd_pair and f.horizon = 20) as pair_fwd_20d,
        max(f.value) filter (where f.subject = e.fwd_pair and f.horizon = 60) as pair_fwd_60d
    from (select * from episodes inner join subjects using (subject)) as e
    left join forward_returns as f on f.date = e.start_date and f.subject in (e.fwd_index, e.fwd_pair)
    group by all
    order by e.indicator, e.subject, e.kind, e.threshold, e.side, e.start_date

)

select * from final
