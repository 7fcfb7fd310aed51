# The regime monitor's Airflow image: the official image of the pinned Airflow, the project's pinned requirements and
# its code, built the way Airflow documents for extending its image (https://airflow.apache.org/docs/docker-stack/
# build.html). Every Airflow service of docker-compose.yml runs it: `docker compose build` after any change to
# requirements.txt (the containers never install packages when they start).
#
# The slim flavour of the image: requirements.txt pins every package the project needs (the providers it uses
# included), so the image's Python environment is the one the tests run against, without the regular flavour's other
# providers at versions nobody tested together with these pins. Its tag names the Airflow version pinned in
# requirements.txt and the project's Python (tests/test_compose.py checks both).
FROM apache/airflow:slim-3.3.2-python3.11

# the folders the compose file mounts volumes on, owned by the image's airflow user (uid 50000, group 0) so that a
# new named volume starts out writable for it
USER root
RUN mkdir -p /opt/regime/data /opt/airflow/auth \
    && chown -R airflow:0 /opt/regime /opt/airflow/auth \
    && chmod -R g+rwX /opt/regime /opt/airflow/auth
USER airflow

# the pins first (a layer of their own: a code change does not reinstall them), as the airflow user, Airflow pinned to
# the image's own version as the docs advise: should requirements.txt name another Airflow, the build fails here
COPY --chown=airflow:0 requirements.txt /opt/regime/requirements.txt
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /opt/regime/requirements.txt

# the code, so that the image runs without bind mounts (docker-compose.dev.yml mounts the working tree over these for
# development). `regime` is imported from include/ (PYTHONPATH) rather than installed into site-packages: it finds its
# SQL (include/sql) and the sample mirror (include/sample) next to itself.
COPY --chown=airflow:0 include /opt/regime/include
COPY --chown=airflow:0 plugins /opt/regime/plugins
COPY --chown=airflow:0 dags /opt/regime/dags
ENV PYTHONPATH=/opt/regime/include:/opt/regime/plugins \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/regime/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/regime/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    REGIME_DATA_DIR=/opt/regime/data

# a pin or an import that does not work in the image fails the build, not the first task
RUN python -c "import asyncpg, duckdb, exchange_calendars, great_expectations, psycopg2, regime.config" \
    && airflow version
