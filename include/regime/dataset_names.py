"""The names of the lake's datasets, in regime.datasets.ALL's order, for what must not import pandas or pyarrow:
the DAG files (their Assets, regime.orchestration.LAKE) are parsed by Airflow's scheduler again and again.
regime.datasets, which holds each dataset's schema, refuses to import if its ALL names others."""

NAMES = ("index_prices", "options_volume", "cftc_tff", "etf_nav", "options_putcall")
