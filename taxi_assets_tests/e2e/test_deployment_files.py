"""The deployment files, tested without a Docker engine: they parse, the services the docs name exist
and are wired the way the docs say, the environment variables are the ones the code reads, secrets
stay out of the image and the repository, and every published port binds to loopback."""

from __future__ import annotations

import ast
import functools
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
WORKSPACE = REPO / "deploy" / "workspace.yaml"
INSTANCE = REPO / "deploy" / "dagster.yaml"
OPERATIONS = REPO / "docs" / "operations.md"

SERVICES = {"postgres", "dagster-init", "user-code", "webserver", "daemon"}
#: Variables the code reads that are not for a deployment: the demo's data folder.
NOT_DEPLOYMENT = {"TAXI_DATA_DIR"}
SECRET_WORDS = ("PASSWORD", "WEBHOOK", "KEYFILE", "SECRET", "TOKEN", "POSTGRES_URL")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def env_example() -> tuple[dict[str, str], set[str]]:
    """(variables set, variables only mentioned in comments as `# NAME=`)."""
    assigned, commented = {}, set()
    for line in ENV_EXAMPLE.read_text().splitlines():
        if m := re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line):
            assigned[m.group(1)] = m.group(2)
        elif m := re.match(r"^#\s*([A-Z][A-Z0-9_]*)=", line):
            commented.add(m.group(1))
    return assigned, commented


@functools.cache
def env_vars_read_by_code() -> frozenset[str]:
    """Every environment variable name the package reads: os.environ / env.get / EnvVar literals,
    and the *_ENV constants and dict values that hold variable names."""
    names: set[str] = set()
    for path in (REPO / "taxi_assets").rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(
                r"(TAXI|POSTGRES|DAGSTER|STORAGE|BIGQUERY)_[A-Z0-9_]+", node.value
            ):
                names.add(node.value)
    return frozenset(names)


def test_compose_parses_and_has_the_services(compose):
    assert set(compose["services"]) == SERVICES
    for name, service in compose["services"].items():
        assert "image" in service, name
        assert "command" in service or name == "postgres", name


def test_every_service_the_docs_name_exists(compose):
    text = OPERATIONS.read_text()
    named = set(re.findall(r"^\|\s*`([a-z][a-z-]*)`\s*\|", text, flags=re.M))
    assert named == SERVICES, named
    assert "docker compose up -d --build" in text  # the one command


def test_published_ports_bind_to_loopback_only(compose):
    published = []
    for name, service in compose["services"].items():
        assert service.get("network_mode") != "host", name
        for port in service.get("ports", []):
            spec = port if isinstance(port, str) else f"{port.get('host_ip', '')}:{port.get('published')}:{port.get('target')}"
            assert spec.startswith("127.0.0.1:"), f"{name} publishes {spec} beyond loopback"
            published.append(name)
    assert "webserver" in published
    assert "user-code" not in published and "daemon" not in published


def test_compose_variables_are_in_env_example(compose):
    assigned, commented = env_example()
    used = set(re.findall(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)", COMPOSE.read_text()))  # $${X} is the container's
    assert used <= set(assigned), used - set(assigned)


def test_env_example_lists_every_variable_the_code_reads():
    assigned, commented = env_example()
    missing = env_vars_read_by_code() - NOT_DEPLOYMENT - set(assigned) - commented
    assert not missing, f"read by the code but not in .env.example: {sorted(missing)}"


def test_user_code_gets_the_variables_the_code_reads(compose):
    """The code location (and the runs it launches) must see every variable the code reads that
    .env.example sets; the webserver and daemon only need Dagster's storage."""
    env = compose["services"]["user-code"]["environment"]
    assigned, _ = env_example()
    wanted = (env_vars_read_by_code() & set(assigned)) | {"POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_DB"}
    wanted -= {"DAGSTER_WEBSERVER_PORT", "POSTGRES_HOST_PORT", "DAGSTER_PG_DB", "TAXI_WAREHOUSE_DB"}
    missing = {v for v in wanted if v in env_vars_read_by_code() or v.startswith("POSTGRES_")} - set(env)
    assert not missing, missing
    for name in ("webserver", "daemon", "dagster-init", "user-code"):
        service_env = compose["services"][name]["environment"]
        for var in ("DAGSTER_PG_HOST", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB"):
            assert var in service_env, (name, var)
        if name != "user-code":
            assert "TAXI_ALERT_WEBHOOK_URL" not in service_env and "POSTGRES_PASSWORD" not in service_env, name


def _values(service: dict) -> str:
    return " ".join(str(v) for v in (service.get("environment") or {}).values())


def test_each_service_gets_only_the_credentials_it_uses(compose):
    """The superuser's password reaches the postgres service alone; the warehouse's only the code
    that loads it; Dagster's storage and the warehouse are different roles."""
    services = compose["services"]
    for name, service in services.items():
        values = _values(service)
        assert ("POSTGRES_SUPERUSER_PASSWORD" in values) == (name == "postgres"), name
        assert ("TAXI_WAREHOUSE_PASSWORD" in values) == (name in ("postgres", "user-code")), name
    code_env = services["user-code"]["environment"]
    assert code_env["POSTGRES_USER"] != code_env["DAGSTER_PG_USER"]
    assert "TAXI_WAREHOUSE_PASSWORD" in code_env["POSTGRES_PASSWORD"]
    assert "DAGSTER_PG_PASSWORD" in code_env["DAGSTER_PG_PASSWORD"]
    assert "POSTGRES_USER" not in services["postgres"]["environment"]  # the image's own superuser, postgres


def test_no_service_may_gain_privileges(compose):
    for name, service in compose["services"].items():
        assert "no-new-privileges:true" in service.get("security_opt", []), name


def test_code_server_is_reachable_from_the_webserver_and_daemon_only(compose):
    services, networks = compose["services"], compose["networks"]
    assert networks["code"]["internal"] is True
    on_code = {name for name, s in services.items() if "code" in (s.get("networks") or {})}
    assert on_code == {"user-code", "webserver", "daemon"}
    command = services["user-code"]["command"]
    host = command[command.index("-h") + 1]
    assert host != "0.0.0.0" and host in services["user-code"]["networks"]["code"]["aliases"]
    assert "ports" not in services["user-code"]
    assert yaml.safe_load(WORKSPACE.read_text())["load_from"][0]["grpc_server"]["host"] == host


def test_init_script_creates_two_non_superuser_roles(postgres_url, tmp_path):
    """deploy/postgres-init/ against a real server: each role logs into its own database only."""
    import os
    import uuid

    import psycopg

    from taxi_assets_tests.postgres_server import find_binaries

    suffix = uuid.uuid4().hex[:8]
    names = {"DAGSTER_PG_USER": f"dagster_{suffix}", "DAGSTER_PG_DB": f"dagster_db_{suffix}",
             "TAXI_WAREHOUSE_USER": f"warehouse_{suffix}", "TAXI_WAREHOUSE_DB": f"ny_taxi_{suffix}"}
    passwords = {"DAGSTER_PG_PASSWORD": "dagster 'pw' " + suffix, "TAXI_WAREHOUSE_PASSWORD": "wh;pw" + suffix}
    admin = psycopg.conninfo.conninfo_to_dict(postgres_url)
    env = {**os.environ, **names, **passwords, "POSTGRES_USER": admin.get("user") or "postgres",
           "PGHOST": admin.get("host") or "127.0.0.1", "PGPORT": str(admin.get("port") or 5432),
           "PGPASSWORD": admin.get("password") or "", "PATH": f"{find_binaries()}:{os.environ['PATH']}"}
    script = REPO / "deploy" / "postgres-init" / "10-warehouse-db.sh"
    done = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True)
    try:
        assert done.returncode == 0, done.stderr
        assert passwords["DAGSTER_PG_PASSWORD"] not in done.stdout + done.stderr

        def login(user: str, password: str, db: str) -> psycopg.Connection:
            return psycopg.connect(postgres_url, user=user, password=password, dbname=db, autocommit=True)

        with login(names["TAXI_WAREHOUSE_USER"], passwords["TAXI_WAREHOUSE_PASSWORD"], names["TAXI_WAREHOUSE_DB"]) as conn:
            assert conn.execute("SELECT rolsuper, rolcreatedb FROM pg_roles WHERE rolname = current_user").fetchone() == (False, False)
            conn.execute("CREATE SCHEMA ny_taxi")  # the owner of its database builds the warehouse
        with login(names["DAGSTER_PG_USER"], passwords["DAGSTER_PG_PASSWORD"], names["DAGSTER_PG_DB"]) as conn:
            assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)
        with pytest.raises(psycopg.OperationalError, match="permission denied"):
            login(names["DAGSTER_PG_USER"], passwords["DAGSTER_PG_PASSWORD"], names["TAXI_WAREHOUSE_DB"])
        with pytest.raises(psycopg.OperationalError, match="permission denied"):
            login(names["TAXI_WAREHOUSE_USER"], passwords["TAXI_WAREHOUSE_PASSWORD"], names["DAGSTER_PG_DB"])
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            for db in (names["DAGSTER_PG_DB"], names["TAXI_WAREHOUSE_DB"]):
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            for role in (names["DAGSTER_PG_USER"], names["TAXI_WAREHOUSE_USER"]):
                conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_secrets_are_never_committed_nor_baked_in():
    assigned, _ = env_example()
    for name, value in assigned.items():
        if any(word in name for word in SECRET_WORDS):
            assert value == "", f".env.example gives {name} a value"
    assert ".env" in (REPO / ".gitignore").read_text().split()
    ignored = DOCKERIGNORE.read_text().split()
    assert ".env" in ignored and ".env.*" in ignored
    dockerfile = DOCKERFILE.read_text()
    for line in dockerfile.splitlines():
        if line.strip().upper().startswith(("ENV ", "ARG ")) or line.startswith("    "):
            assert not any(word in line.upper() for word in SECRET_WORDS), line
    assert not re.search(r"^\s*COPY\s+\.\s", dockerfile, flags=re.M), "COPY . would take whatever is in the folder"
    assert ".env" not in dockerfile.replace(".env.example", "")
    compose_text = COMPOSE.read_text()
    for var in ("POSTGRES_SUPERUSER_PASSWORD", "DAGSTER_PG_PASSWORD", "TAXI_WAREHOUSE_PASSWORD"):
        assert f"${{{var}:?" in compose_text, var  # required, never defaulted
    assert not re.search(r"^\s*[A-Z_]*PASSWORD:\s+[^$\s]", compose_text, flags=re.M), "a literal password in docker-compose.yml"


def test_dockerfile_shape():
    text = DOCKERFILE.read_text()
    base = re.search(r"^FROM\s+(\S+)", text, flags=re.M).group(1)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base), base  # a pinned patch release
    assert re.search(r"^USER\s+(?!root)\w+", text, flags=re.M), "the image must not run as root"
    assert "dagster.yaml" in text and "workspace.yaml" in text
    assert "taxi_assets.definitions" in text


def test_workspace_points_at_the_user_code_service(compose):
    workspace = yaml.safe_load(WORKSPACE.read_text())
    [entry] = workspace["load_from"]
    grpc = entry["grpc_server"]
    # the code server's alias on the internal code network
    [service] = [name for name, s in compose["services"].items()
                 if isinstance(s.get("networks"), dict) and grpc["host"] in (s["networks"].get("code") or {}).get("aliases", [])]
    assert service == "user-code"
    command = compose["services"][service]["command"]
    assert str(grpc["port"]) == command[command.index("-p") + 1]
    assert grpc["location_name"] == "taxi_assets"
    for name in ("webserver", "daemon"):
        command = compose["services"][name]["command"]
        assert command[command.index("-w") + 1] == "/opt/dagster/app/workspace.yaml"


def test_instance_yaml_is_valid_dagster_config(monkeypatch, tmp_path):
    from dagster._core.instance.config import dagster_instance_config

    for var in ("DAGSTER_PG_HOST", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB"):
        monkeypatch.setenv(var, "x")
    monkeypatch.setenv("DAGSTER_PG_PORT", "5432")
    shutil.copy(INSTANCE, tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
    assert config["run_retries"] == {"enabled": True, "max_retries": 2, "retry_on_asset_or_op_failure": False}
    assert config["run_monitoring"]["enabled"] is True
    assert config["run_monitoring"]["free_slots_after_run_end_seconds"] > 0
    assert config["concurrency"]["pools"]["granularity"] == "op"
    assert config["concurrency"]["pools"]["default_limit"] == 1
    raw = yaml.safe_load(INSTANCE.read_text())
    for key, value in raw["storage"]["postgres"]["postgres_db"].items():
        if key != "scheme":
            assert isinstance(value, dict) and "env" in value, f"{key} must come from the environment"


def test_pools_named_in_the_code_are_the_ones_configured(compose):
    """The pools the assets use are the ones the init service sets limits for."""
    code = "\n".join(p.read_text() for p in (REPO / "taxi_assets" / "defs" / "assets").glob("*.py"))
    pools = set(re.findall(r'pool="([a-z_]+)"', code))
    assert pools == {"tlc_downloads", "warehouse_writes"}
    init = " ".join(compose["services"]["dagster-init"]["command"])
    for pool in pools:
        assert f"concurrency set {pool}" in init, pool


def test_postgres_runs_with_the_warehouse_server_settings(compose):
    """Compose starts Postgres with the settings the bench measures (and the docs explain)."""
    from taxi_assets.storage.warehouse.postgres import SERVER_SETTINGS

    command = compose["services"]["postgres"]["command"]
    assert command[0] == "postgres"
    given = dict(arg.split("=", 1) for flag, arg in zip(command[1::2], command[2::2]) if flag == "-c")
    assert given == SERVER_SETTINGS
    assert "wal_level=minimal" in OPERATIONS.read_text()


def test_shell_scripts_parse():
    for script in [*(REPO / "deploy" / "postgres-init").glob("*.sh"), REPO / "scripts" / "ensure_chromium.sh"]:
        subprocess.run(["sh" if script.parent.name == "postgres-init" else "bash", "-n", str(script)], check=True)


@pytest.mark.skipif(
    shutil.which("docker") is None or subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0,
    reason="docker compose is not installed (only the files are checked)",
)
def test_docker_compose_config_validates(tmp_path):
    env = tmp_path / ".env"
    text = ENV_EXAMPLE.read_text()
    for var in ("POSTGRES_SUPERUSER_PASSWORD", "DAGSTER_PG_PASSWORD", "TAXI_WAREHOUSE_PASSWORD"):
        text = text.replace(f"{var}=\n", f"{var}=not-a-secret\n")
    env.write_text(text)
    subprocess.run(["docker", "compose", "-f", str(COMPOSE), "--env-file", str(env), "config", "-q"], check=True)
