-- internal.extremes_ranks, state of the incremental update of marts.extremes (include/regime/extremes/state.py): each
-- series' distinct values ascending (-0.0 as 0.0), in blocks cut before the values a hash of their bits picks (about
-- one in 1024): lo and hi (first and last value), readings (ties included), the values as a BLOB of little-endian
-- doubles and the readings of each as a BLOB of little-endian int32 (NULL: one each). The engine sorts and cuts
-- them; this model names the series. `hot` (not a column of the table): the block of each series' latest value and
-- its neighbours, where the next update most likely reads: the build writes them last.
with blocks as (

    select * from extremes_ranks_engine

),

series as (

    select series_id, indicator, subject from extremes_series_engine

),

final as (

    select
        s.indicator,
        s.subject,
        b.lo::double as lo,
        b.hi::double as hi,
        b.readings::bigint as readings,
        b.sorted_values::blob as sorted_values,
        b.counts::blob as counts,
        b.hot
    from blocks as b
    inner join series as s using (series_id)

)

select * from final
