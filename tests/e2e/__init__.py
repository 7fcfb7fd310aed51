"""End-to-end tests under a real Airflow stack (PostgreSQL, api-server, scheduler, dag-processor, triggerer)."""
