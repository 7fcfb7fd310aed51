"""The compose stack (docker-compose.yml, docker-compose.dev.yml) and its image (Dockerfile, .dockerignore), checked
against the code without Docker: the image is the pinned Airflow with the pinned requirements and the code where the
compose file points; every Airflow service runs that image and the command the end-to-end tests start
(tests/e2e/stack.py, SERVICE_COMMANDS), has a healthcheck Airflow's own CLI accepts, and installs nothing when it
starts; the api-server has an admin login; every setting the file passes is one the code reads.

The development machines have no Docker engine: where a `docker compose` (or `docker-compose`) client is installed,
one more test has it validate the files (no engine needed for that)."""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from e2e.stack import SERVICE_COMMANDS

PROJECT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = PROJECT / "docker-compose.yml"
DEV_FILE = PROJECT / "docker-compose.dev.yml"
COMPOSE = yaml.safe_load(COMPOSE_FILE.read_text())
SERVICES: dict[str, dict] = COMPOSE["services"]
THIRD_PARTY = {"postgres", "mailpit", "redis", "s3"}  # images of their own, pinned to a tag
AIRFLOW_SERVICES = sorted(set(SERVICES) - THIRD_PARTY)
PASSWORDS_SCRIPT = re.compile(r"<<'PASSWORDS'\n(.*?)\nPASSWORDS\b", re.S)
BUCKETS_SCRIPT = re.compile(r"<<'BUCKETS'\n(.*?)\nBUCKETS\b", re.S)

# Flags of SERVICE_COMMANDS that the containers leave out on purpose, and why. The e2e stack's processes share one
# host with everything else and listen on 127.0.0.1 only; a container's ports are reachable on the compose network only.
# What the e2e stack adds as it starts a process (the api-server's --host and --port, a worker's --celery-hostname and
# --concurrency) is not in SERVICE_COMMANDS: the containers keep Airflow's defaults (0.0.0.0:8080; celery@<container
# hostname>, which the worker's healthcheck pings; [celery] worker_concurrency).
E2E_ONLY_FLAGS = {
    "--skip-serve-logs": "the e2e stack starts no log server, since it binds 0.0.0.0 on the host; in the compose "
                         "network the scheduler (LocalExecutor), the triggerer and the workers serve the logs of "
                         "running tasks to the api-server as Airflow intends (finished tasks' logs are on the shared "
                         "airflow-logs volume either way)",
}
# Airflow services of the compose file that the e2e stack does not start as services, and why.
NOT_E2E_SERVICES = {
    "airflow-init": "one-shot: `airflow db migrate` (the e2e stack runs the same before starting its services) and "
                    "the admin's password",
}


# ----------------------------------------------------------------------------------------------------------- helpers
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined and comments left out."""
    instructions, current = [], ""
    for raw in (PROJECT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        keyword, _, rest = (current + line).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        current = ""
    return instructions


def dockerfile_env() -> dict[str, str]:
    return dict(item.split("=", 1) for keyword, rest in dockerfile() if keyword == "ENV" for item in shlex.split(rest))


def copies() -> dict[str, str]:
    """Source in the build context -> destination in the image, of every COPY."""
    found = {}
    for keyword, rest in dockerfile():
        if keyword == "COPY":
            *sources, destination = [part for part in shlex.split(rest) if not part.startswith("--")]
            for source in sources:
                found[source.rstrip("/")] = destination
    return found


def command(service: dict) -> list[str]:
    value = service.get("command", [])
    return shlex.split(value) if isinstance(value, str) else list(value)


def subcommand(args: list[str]) -> list[str]:
    """The leading words of an `airflow` command line, before its first flag: `celery worker`, `scheduler`."""
    words = []
    for arg in args:
        if arg.startswith("-"):
            break
        words.append(arg)
    return words


def compose_default(value: str) -> str:
    """The default of a `${VAR:-default}` value (the value itself when it is not one)."""
    match = re.fullmatch(r"\$\{\w+:?-(.*)\}", value)
    return match.group(1) if match else value


def environment(name: str) -> dict[str, str]:
    return SERVICES[name].get("environment", {})


def volume_targets(name: str) -> set[str]:
    return {mount.split(":")[1] for mount in SERVICES[name].get("volumes", [])}


def healthcheck_args(name: str) -> list[str]:
    """The healthcheck of a service as a command line (CMD-SHELL strings split as the shell would)."""
    test = SERVICES[name]["healthcheck"]["test"]
    kind, *args = [test] if isinstance(test, str) else test
    if kind == "CMD-SHELL":
        return shlex.split(args[0])
    assert kind == "CMD", f"{name}: healthcheck test {test!r} is neither CMD nor CMD-SHELL"
    return args


@functools.cache
def airflow_parser():
    from airflow.cli.cli_parser import get_parser

    return get_parser()


def parses(parser, args: list[str]) -> bool:
    try:
        parser.parse_args(args)
    except SystemExit:
        return False
    return True


def airflow_default(section: str, key: str) -> str:
    """The default of an Airflow setting, from the installed Airflow's own config template."""
    import airflow

    template = Path(airflow.__file__).parent / "config_templates" / "config.yml"
    return str(yaml.safe_load(template.read_text())[section]["options"][key]["default"])


def pinned(package: str) -> str | None:
    for line in (PROJECT / "requirements.txt").read_text().splitlines():
        name, _, version = line.partition("==")
        if re.sub(r"[-_.]+", "-", name.strip()).lower() == package:
            return version.strip()
    return None


# ------------------------------------------------------------------------------------------------------- the image
def test_the_image_extends_the_official_image_of_the_pinned_airflow_and_python():
    [base] = [rest for keyword, rest in dockerfile() if keyword == "FROM"]
    match = re.fullmatch(r"apache/airflow:(?:slim-)?(\d+\.\d+\.\d+)-python(\d+\.\d+)", base)
    assert match, f"FROM {base}: not an official apache/airflow image tag with an Airflow and a Python version"
    assert match.group(1) == pinned("apache-airflow") == pinned("apache-airflow-core")
    requires = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert f">={match.group(2)}" in requires, f"the image's Python {match.group(2)} is not the project's ({requires})"
    assert sys.version_info[:2] == tuple(map(int, match.group(2).split(".")))  # the Python the tests run on


def test_the_image_installs_the_pinned_requirements_at_build_time_as_the_airflow_user():
    requirements_in_image = copies()["requirements.txt"]
    user, installs = "airflow", []
    for keyword, rest in dockerfile():
        if keyword == "USER":
            user = rest
        elif keyword == "RUN" and re.search(r"\bpip install\b", rest):
            installs.append((user, rest))
    [(user, install)] = installs
    assert user == "airflow", "pip must run as the airflow user (Airflow's image docs)"
    assert "--no-cache-dir" in install and f"-r {requirements_in_image}" in install
    # Airflow pinned to the base image's own version as well: requirements.txt cannot move it
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in install
    # the PostgreSQL drivers of the metadata DB (sync and async), pinned
    assert pinned("psycopg2-binary") and pinned("asyncpg")


def test_the_image_holds_the_code_where_the_compose_file_points():
    copied = copies()
    env = dockerfile_env()
    compose_env = environment("scheduler")
    assert copied["dags"] == env["AIRFLOW__CORE__DAGS_FOLDER"] == compose_env["AIRFLOW__CORE__DAGS_FOLDER"]
    assert copied["plugins"] == env["AIRFLOW__CORE__PLUGINS_FOLDER"] == compose_env["AIRFLOW__CORE__PLUGINS_FOLDER"]
    # `regime` is imported from the copied include/ (its SQL and sample mirror beside it)
    assert copied["include"] in env["PYTHONPATH"].split(":")
    mirror = Path(compose_env["REGIME_MIRROR_DIR"]).relative_to(copied["include"])
    assert (PROJECT / "include" / mirror).is_dir(), f"REGIME_MIRROR_DIR names include/{mirror}, not in the repository"
    # the data dir: the image's default, a volume in compose, and a folder the image makes for the airflow user
    assert env["REGIME_DATA_DIR"] == compose_env["REGIME_DATA_DIR"] in volume_targets("scheduler")
    made = " ".join(rest for keyword, rest in dockerfile() if keyword == "RUN" and "mkdir" in rest)
    for target in volume_targets("scheduler") - {"/opt/airflow/logs"}:  # the base image has its logs folder
        assert target in made, f"{target} is a volume but the image does not make it (a new volume is root's)"


def test_the_build_context_keeps_what_the_image_copies_and_leaves_out_local_state():
    patterns = [line.strip() for line in (PROJECT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]

    def regex(pattern: str) -> re.Pattern:  # Docker's rules, as far as this file uses them: `*` within one name
        any_depth = pattern.startswith("**/")
        body = re.escape(pattern.removeprefix("**/")).replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        return re.compile(("(?:.*/)?" if any_depth else "") + body)

    rules = [regex(pattern) for pattern in patterns]

    def ignored(path: str) -> bool:  # a path is left out when it or a folder above it matches
        parts = path.split("/")
        return any(rule.fullmatch("/".join(parts[:i])) for rule in rules for i in range(1, len(parts) + 1))

    for source in copies():
        assert (PROJECT / source).exists(), f"the Dockerfile copies {source}, not in the repository"
        assert not ignored(source), f".dockerignore leaves {source} out of the build context, and the image copies it"
        root = PROJECT / source
        for path in ([root] if root.is_file() else root.rglob("*")):
            relative = path.relative_to(PROJECT).as_posix()
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                assert not ignored(relative), f".dockerignore leaves out {relative}, which the image needs"
    for local in (".git", ".venv", ".airflow", "data", ".env"):
        assert ignored(local), f".dockerignore should leave {local} out of the build context"


# -------------------------------------------------------------------------------------------------- the services
def test_every_service_runs_the_project_image_or_a_pinned_third_party_image():
    project_image = SERVICES["api-server"]["image"]
    assert compose_default(project_image) == "regime-monitor:latest"
    for name in AIRFLOW_SERVICES:
        service = SERVICES[name]
        assert service.get("build") == "." and service["image"] == project_image, f"{name}: not the project image"
        assert service["user"] == "50000:0"  # the image's airflow user, owner of the folders it makes
    assert {"api-server", "scheduler", "dag-processor", "triggerer", "airflow-init"} <= set(AIRFLOW_SERVICES)
    for name in THIRD_PARTY:
        image = SERVICES[name]["image"]
        assert re.fullmatch(r"[\w./-]+:v?\d[\w.-]*", image), f"{name}: {image} is not pinned to a version tag"


def test_no_service_installs_packages_when_it_starts():
    for name, service in SERVICES.items():
        entrypoint = service.get("entrypoint", [])
        line = " ".join([*(shlex.split(entrypoint) if isinstance(entrypoint, str) else entrypoint), *command(service)])
        assert not re.search(r"\b(pip3?|uv)\b", line), f"{name} installs packages when it starts: {line[:200]}"
        assert "_PIP_ADDITIONAL_REQUIREMENTS" not in service.get("environment", {})


def test_every_long_running_service_has_a_healthcheck_and_starts_after_what_it_needs():
    for name, service in SERVICES.items():
        if name == "airflow-init":
            assert service["restart"] == "no" and "healthcheck" not in service  # one-shot
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert service["restart"] == "always"
        for needed in service.get("depends_on", {}):
            assert needed in SERVICES, f"{name} depends on {needed}, not a service"
    for name in set(AIRFLOW_SERVICES) - {"airflow-init"}:
        depends = SERVICES[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["airflow-init"]["condition"] == "service_completed_successfully"
    worker = SERVICES["airflow-worker"]["depends_on"]
    assert worker["redis"]["condition"] == worker["api-server"]["condition"] == "service_healthy"


@pytest.mark.slow
def test_the_healthchecks_are_the_ones_airflow_provides_and_its_cli_accepts():
    parser = airflow_parser()
    # api-server: its public version endpoint, on the port it listens on by default (the one compose publishes)
    api = healthcheck_args("api-server")
    api_port = airflow_default("api", "port")
    assert api[0] == "curl" and "--fail" in api and api[-1] == f"http://localhost:{api_port}/api/v2/version"
    assert any(published.endswith(f":{api_port}") for published in SERVICES["api-server"]["ports"])
    # scheduler: its health check server, which only runs when enabled
    scheduler = healthcheck_args("scheduler")
    port = airflow_default("scheduler", "scheduler_health_check_server_port")
    assert scheduler[0] == "curl" and "--fail" in scheduler and scheduler[-1] == f"http://localhost:{port}/health"
    assert environment("scheduler")["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"].lower() == "true"
    # dag-processor and triggerer: an alive job of their kind on this host, as `airflow jobs check` finds it
    for name, job in (("dag-processor", "DagProcessorJob"), ("triggerer", "TriggererJob")):
        args = healthcheck_args(name)
        assert args[:3] == ["airflow", "jobs", "check"] and ["--job-type", job] == args[3:5] and "--local" in args
        assert parses(parser, args[1:]), f"{name}: `{' '.join(args)}` is not a command the installed Airflow accepts"
    # the Celery worker: answers a ping addressed to its own node name (celery@<container hostname>)
    ping = SERVICES["airflow-worker"]["healthcheck"]["test"][1]
    assert '-d "celery@$${HOSTNAME}"' in ping  # $$: the shell, not compose, expands HOSTNAME
    args = healthcheck_args("airflow-worker")
    assert args[:2] == ["celery", "--app"] and args[3:5] == ["inspect", "ping"]
    pytest.importorskip("airflow.providers.celery", reason="the Celery provider is not installed here")
    from celery import Celery
    from celery.app.utils import find_app

    assert isinstance(find_app(args[2]), Celery), f"{args[2]} is not the Celery app of Airflow's Celery provider"
    # the third-party services: their own clients
    assert healthcheck_args("postgres")[0] == "pg_isready" and healthcheck_args("mailpit") == ["/mailpit", "readyz"]
    assert healthcheck_args("redis")[:2] == ["redis-cli", "ping"] and "REDISCLI_AUTH" in environment("redis")


def test_the_airflow_services_run_the_commands_the_e2e_stack_starts():
    for flag in E2E_ONLY_FLAGS:  # no reason kept for a flag nobody passes any more
        assert any(flag in args for args in SERVICE_COMMANDS.values()), f"E2E_ONLY_FLAGS: {flag} is not used"
    covered = set()
    for name, args in SERVICE_COMMANDS.items():
        candidates = [name] if name in SERVICES else [
            other for other in AIRFLOW_SERVICES if subcommand(command(SERVICES[other])) == subcommand(args)]
        assert len(candidates) == 1, f"SERVICE_COMMANDS[{name!r}]: no single compose service runs `{' '.join(args)}`"
        [service] = candidates
        expected = [arg for arg in args if arg not in E2E_ONLY_FLAGS]
        assert command(SERVICES[service]) == expected, (
            f"compose service {service} runs {command(SERVICES[service])}, the e2e stack {args} (a deliberate "
            f"difference belongs in E2E_ONLY_FLAGS, with its reason)")
        covered.add(service)
    assert set(AIRFLOW_SERVICES) - covered == set(NOT_E2E_SERVICES), (
        f"compose services the e2e stack does not start: {sorted(set(AIRFLOW_SERVICES) - covered)}; with a reason "
        f"kept (NOT_E2E_SERVICES): {sorted(NOT_E2E_SERVICES)}")


def test_every_airflow_service_command_is_one_the_installed_airflow_accepts():
    parser = airflow_parser()
    celery = importlib.util.find_spec("airflow.providers.celery") is not None
    checked = []
    for name in sorted(set(AIRFLOW_SERVICES) - {"airflow-init"}):
        args = command(SERVICES[name])
        if args[0] == "celery" and not celery:
            continue  # `airflow celery` comes with the Celery provider, not installed here
        checked.append(name)
        assert parses(parser, args), f"{name}: `airflow {' '.join(args)}`: not a command the installed Airflow accepts"
    assert {"api-server", "scheduler", "dag-processor", "triggerer"} <= set(checked)


def test_the_init_migrates_the_db_like_the_e2e_stack():
    init = SERVICES["airflow-init"]
    assert init["entrypoint"] == "/bin/bash" and command(init)[0] == "-c"
    script = command(init)[1]
    assert script.startswith("set -euo pipefail\n") and "\nairflow db migrate\n" in script
    assert '"db", "migrate"' in (PROJECT / "tests" / "e2e" / "stack.py").read_text()


@pytest.mark.slow
def test_the_api_server_has_an_admin_login_that_airflow_init_writes(tmp_path, monkeypatch):
    env = environment("api-server")
    assert env.get("AIRFLOW__CORE__AUTH_MANAGER") in (None, "airflow.api_fastapi.auth.managers.simple."
                                                            "simple_auth_manager.SimpleAuthManager")
    assert "SimpleAuthManager" in airflow_default("core", "auth_manager")
    password_file = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    for name in ("airflow-init", "api-server"):  # one volume: written by the one, read by the other
        assert str(password_file.parent) in volume_targets(name), f"{name} does not mount {password_file.parent}"
    assert environment("airflow-init")["AIRFLOW_ADMIN_PASSWORD"] == "${AIRFLOW_ADMIN_PASSWORD-}"  # no default one

    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"])
    [admin] = SimpleAuthManager.get_users()
    assert (admin.username, admin.role) == ("admin", "admin")

    # airflow-init's password step, run as the container runs it (compose leaves a script without `$` unchanged)
    [script] = PASSWORDS_SCRIPT.findall(command(SERVICES["airflow-init"])[1])
    assert "$" not in script
    local = tmp_path / "auth" / "passwords.json"

    def init(password: str | None) -> str:
        run_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                   "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(local),
                   "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"],
                   **({"AIRFLOW_ADMIN_PASSWORD": password} if password is not None else {})}
        done = subprocess.run([sys.executable, "-c", script], env=run_env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(local))
    said = init(None)  # no AIRFLOW_ADMIN_PASSWORD: a generated one, printed once
    generated = SimpleAuthManager.get_passwords()["admin"]
    assert len(generated) >= 16 and generated in said and oct(local.stat().st_mode)[-3:] == "600"
    assert generated not in init("")  # a restart keeps it (and does not print it again)
    assert SimpleAuthManager.get_passwords() == {"admin": generated}
    init("chosen-by-the-operator")  # AIRFLOW_ADMIN_PASSWORD set: that one, also over an earlier one
    assert SimpleAuthManager.get_passwords() == {"admin": "chosen-by-the-operator"}


def test_the_regime_settings_passed_are_ones_the_code_reads():
    config = (PROJECT / "include" / "regime" / "config.py").read_text()
    passed = {key for name in AIRFLOW_SERVICES for key in environment(name) if key.startswith("REGIME_")}
    assert {"REGIME_DATA_DIR", "REGIME_SOURCE", "REGIME_MIRROR_DIR", "REGIME_ALERT_TO"} <= passed
    for key in passed | {key for key in dockerfile_env() if key.startswith("REGIME_")}:
        assert re.search(rf'\("{key}"', config), f"{key} is passed to the containers but include/regime/config.py " \
                                                 "does not read it"
    assert compose_default(environment("scheduler")["REGIME_SOURCE"]) in ("live", "mirror")
    # the operators' Variable, as the failure mails read it
    variable = next(key for key in environment("scheduler") if key.startswith("AIRFLOW_VAR_"))
    notify = (PROJECT / "include" / "regime" / "notify.py").read_text()
    assert f"var.value.get('{variable.removeprefix('AIRFLOW_VAR_').lower()}'" in notify


def test_the_mail_connection_parses_and_points_at_mailpit(monkeypatch):
    from airflow.models.connection import Connection

    from regime.config import get_settings

    for key in [key for key in os.environ if key.startswith("REGIME_")]:
        monkeypatch.delenv(key)
    conn_id = get_settings().smtp_conn_id  # the connection the code sends mail through
    value = environment("scheduler")[f"AIRFLOW_CONN_{conn_id.upper()}"]
    conn = Connection.from_json(value, conn_id=conn_id)
    assert (conn.conn_type, conn.host, conn.port) == ("smtp", "mailpit", 1025)  # Mailpit's SMTP port
    assert conn.host in SERVICES and conn.extra_dejson["from_email"] == "regime-monitor@localhost"


def test_the_executor_is_local_by_default_and_the_celery_profile_adds_redis_and_workers():
    for name in set(AIRFLOW_SERVICES) - {"airflow-worker"}:
        assert compose_default(environment(name)["AIRFLOW__CORE__EXECUTOR"]) == "LocalExecutor"
    worker = SERVICES["airflow-worker"]
    assert subcommand(command(worker)) == ["celery", "worker"]
    assert worker["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert worker["profiles"] == SERVICES["redis"]["profiles"] == ["celery"]
    assert "profiles" not in SERVICES["scheduler"]  # the default stack needs no profile
    broker = environment("scheduler")["AIRFLOW__CELERY__BROKER_URL"]
    assert re.fullmatch(r"redis://:\$\{REDIS_PASSWORD:-[\w-]+\}@redis:6379/0", broker)
    # the image is the slim one: the Celery provider (and Celery's Redis client) come from requirements.txt
    assert pinned("apache-airflow-providers-celery") and pinned("redis") and pinned("celery")


def test_the_services_reach_the_api_server_and_the_database_by_service_name():
    env = environment("scheduler")
    execution = re.fullmatch(r"http://([\w-]+):(\d+)/execution/", env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert execution and execution.group(1) in SERVICES and execution.group(1) == "api-server"
    assert execution.group(2) == airflow_default("api", "port")
    # the password from the environment, a local-only default otherwise (built in two parts: no URL-with-password
    # literal in the repository for the secret scan to flag)
    login = r"postgresql\+psycopg2://airflow:\$\{POSTGRES_PASSWORD:-[\w-]+\}"
    assert re.fullmatch(login + r"@postgres/airflow", env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert SERVICES["postgres"]["environment"]["POSTGRES_DB"] == "airflow"
    declared = set(COMPOSE["volumes"])
    for name, service in SERVICES.items():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            assert source.startswith(("./", "/")) or source in declared, f"{name}: volume {source} is not declared"


def test_the_dev_file_mounts_the_working_tree_over_the_code_in_the_image():
    dev = yaml.safe_load(DEV_FILE.read_text())["services"]
    assert set(dev) == set(AIRFLOW_SERVICES)
    targets = {destination: source for source, destination in copies().items() if source != "requirements.txt"}
    for name, service in dev.items():
        mounts = {target: (source, mode) for source, target, mode in (m.split(":") for m in service["volumes"])}
        assert set(mounts) == set(targets), f"{name}: the dev file mounts {sorted(mounts)}"
        for target, (source, mode) in mounts.items():
            assert source == f"./{targets[target]}" and mode == "ro"


def _compose_client() -> list[str] | None:
    for client in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(client[0]) and subprocess.run([*client, "version"], capture_output=True,
                                                      timeout=60).returncode == 0:
            return client
    return None


@pytest.mark.slow
def test_a_compose_client_accepts_the_files():
    client = _compose_client()
    if client is None:
        pytest.skip("no `docker compose` or `docker-compose` client installed (the files are checked above)")
    for files in (["-f", "docker-compose.yml"], ["-f", "docker-compose.yml", "-f", "docker-compose.dev.yml"]):
        done = subprocess.run([*client, *files, "--profile", "celery", "--profile", "s3", "config", "-q"],
                              cwd=PROJECT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{' '.join(client)} {' '.join(files)} config: {done.stderr}"


# --------------------------------------------------------------------------------------------- the `s3` profile
S3_SETTINGS = ("REGIME_LAKE_URI", "REGIME_PUBLISH_URI", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID",
               "AWS_SECRET_ACCESS_KEY")


def test_the_s3_profile_adds_the_tests_s3_server_and_the_default_stack_keeps_its_volume():
    server = SERVICES["s3"]
    assert server["profiles"] == ["s3"]
    assert all("profiles" not in SERVICES[name] for name in ("scheduler", "api-server", "airflow-init", "postgres"))
    # the moto server the tests run (requirements-s3server.txt), the official image of that version
    moto = next(line.split("==")[1] for line in (PROJECT / "requirements-s3server.txt").read_text().splitlines()
                if line.startswith("moto=="))
    assert server["image"] == f"motoserver/moto:{moto}"
    # reachable on this machine only (analysts' `regime --warehouse s3://…`), on moto's port in the compose network
    [published] = server["ports"]
    host, host_port, port = published.split(":")
    assert host == "127.0.0.1" and host_port == port == "5000"
    # healthy when its API answers: the path tests/s3.py polls, on that port
    assert server["healthcheck"]["test"][:3] == ["CMD", "python", "-c"]
    assert f"http://localhost:{port}/moto-api/" in server["healthcheck"]["test"][3]
    assert "/moto-api/" in (PROJECT / "tests" / "s3.py").read_text()
    assert server["restart"] == "always"
    # no service depends on it (it exists with the profile only; depends_on's `required: false` is Compose 2.20's):
    # airflow-init's bucket step waits for it instead
    assert all("s3" not in service.get("depends_on", {}) for service in SERVICES.values())
    # the documented command points the settings at the service, by its name and port
    for text in (COMPOSE_FILE.read_text(), (PROJECT / "docs" / "operations.md").read_text()):
        assert f"AWS_ENDPOINT_URL=http://s3:{port}" in text and "--profile s3 up" in text


def test_the_object_storage_settings_come_from_the_environment_with_no_secret_in_the_file():
    code = "".join((PROJECT / "include" / "regime" / f"{m}.py").read_text() for m in ("objectstore", "config"))
    for name in AIRFLOW_SERVICES:
        env = environment(name)
        for key in S3_SETTINGS:
            if key == "AWS_REGION":
                assert env[key] == "${AWS_REGION:-us-east-1}", name
            else:  # unset by default: the lake and the warehouse stay on the regime-data volume; no literal value
                assert env[key] == f"${{{key}:-}}", (name, key)
            assert re.search(rf'\("{key}"', code), f"{key} is passed but neither objectstore nor config reads it"


def _buckets(script: str, env: dict) -> subprocess.CompletedProcess:
    run_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": os.pathsep.join(sys.path), **env}
    return subprocess.run([sys.executable, "-c", script], env=run_env, capture_output=True, text=True, timeout=120)


def test_airflow_init_makes_the_buckets_the_settings_name_on_the_profile_s_server(moto):
    """airflow-init's bucket step, run as the container runs it (compose leaves a script without `$` unchanged),
    against the tests' S3-compatible server: it makes the buckets of REGIME_LAKE_URI and REGIME_PUBLISH_URI, again
    without harm, nothing without s3:// settings, and fails clearly (no secret shown) without credentials."""
    import pyarrow.fs as pafs

    [script] = BUCKETS_SCRIPT.findall(command(SERVICES["airflow-init"])[1])
    assert "$" not in script
    init = command(SERVICES["airflow-init"])[1]
    assert init.index("airflow pools import") < init.index("<<'BUCKETS'") < init.index("<<'PASSWORDS'")
    suffix = os.urandom(4).hex()
    settings = {"REGIME_LAKE_URI": f"s3://lake-{suffix}/regime", "REGIME_PUBLISH_URI": f"s3://pub-{suffix}/regime"}
    for _ in range(2):  # a restart of the stack runs it again
        done = _buckets(script, {**moto.env, **settings})
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == [f"REGIME_LAKE_URI: the bucket 'lake-{suffix}' is there",
                                            f"REGIME_PUBLISH_URI: the bucket 'pub-{suffix}' is there"]
    fs = moto.filesystem()
    assert {fs.get_file_info(f"{kind}-{suffix}").type for kind in ("lake", "pub")} == {pafs.FileType.Directory}
    done = _buckets(script, moto.env)  # the default stack: nothing to make
    assert done.returncode == 0 and done.stdout == "", done.stderr
    done = _buckets(script, {"AWS_ENDPOINT_URL": moto.env["AWS_ENDPOINT_URL"], **settings})
    assert done.returncode != 0 and "no S3 credentials" in done.stderr
