"""marts.extremes: for every reading of marts.indicators, its record flags, the latest earlier date at or beyond its
value ("highest since" / "lowest since") and its expanding percentile rank.

SQL reads the readings (include/sql/marts/extremes_readings.sql) and assembles the table
(include/sql/marts/extremes.sql); the modules here compute the columns in between (docs/indicators.md: why not
DuckDB's framed window functions, and the measurements):

- kernels: the numpy engine (record flags, "highest since", percentile ranks) over rows sorted by series and date;
- state: the incremental state (schema `internal`: what an update carries forward) and its numpy transitions;
- build: the full build of marts.extremes and of the state (build.build, from warehouse.build);
- update: the incremental update of both from the new readings only (update.update, from warehouse.update).
"""
