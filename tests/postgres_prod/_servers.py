"""Throwaway PostgreSQL servers, a PgBouncer and a TLS CA for the production tests.

Everything runs from the binaries on the machine (``initdb``, ``pg_ctl``,
``pg_basebackup``, ``pgbouncer``, ``openssl``) in a temporary directory, on
loopback ports. As root, servers run as the ``postgres`` OS user (initdb
refuses root). A missing binary skips the test locally and fails it in CI
(``CI=true``).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

__all__ = [
    "Bouncer",
    "Cluster",
    "cluster",
    "make_ca",
    "need",
    "pg_url",
    "server_root",
]

_PG_BIN_DIRS = ["/usr/lib/postgresql/15/bin", "/usr/local/bin", "/usr/sbin"]


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


@pytest.fixture
def server_root() -> Iterator[Path]:
    """A temporary directory the ``postgres`` OS user can use too.

    Import it into a test module to use it (this is not a conftest).
    """
    root = Path(tempfile.mkdtemp(prefix="perdure-pg-"))
    # pytest's tmp_path is private to root; servers run as "postgres".
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def need(binary: str) -> str:
    """The path of *binary*; skip (locally) or fail (in CI) without it."""
    path = shutil.which(binary) or next(
        (f"{d}/{binary}" for d in _PG_BIN_DIRS if os.access(f"{d}/{binary}", os.X_OK)),
        None,
    )
    if path is None:
        _missing(f"{binary} is not installed")
        raise AssertionError("unreachable")
    return path


def pg_url() -> str:
    """PERDURE_TEST_POSTGRES_URL; skip (locally) or fail (in CI) without it."""
    url = os.environ.get("PERDURE_TEST_POSTGRES_URL")
    if not url:
        _missing("PERDURE_TEST_POSTGRES_URL is not set")
        raise AssertionError("unreachable")
    return url


def free_port() -> int:
    """A loopback TCP port nobody listens on (now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


def _give(path: Path) -> None:
    """Let the server user own *path* (when we are root)."""
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        for item in [path, *path.rglob("*")]:
            os.chown(item, entry.pw_uid, entry.pw_gid)


def _run(argv: list[str]) -> None:
    done = subprocess.run(
        _as_server_user(argv), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {done.stdout}{done.stderr}")


def _wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=0.5),
        ):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


class Cluster:
    """One PostgreSQL server in *root*/*name*, on a free loopback port."""

    def __init__(self, root: Path, name: str) -> None:
        self.data = root / name
        self.port = free_port()
        self.running = False

    def url(self, user: str = "postgres", db: str = "postgres") -> str:
        """A URL to this server."""
        return f"postgresql://{user}@127.0.0.1:{self.port}/{db}"

    def init(self, **settings: str) -> None:
        """``initdb`` with trust auth on loopback (and replication), plus *settings*."""
        self.data.parent.mkdir(parents=True, exist_ok=True)
        _give(self.data.parent)
        _run(
            [
                need("initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ]
        )
        hba = self.data / "pg_hba.conf"
        lines = hba.read_text()
        if settings.pop("hba_ssl_only", "") == "on":
            lines = "local all all trust\nhostssl all all 127.0.0.1/32 trust\n"
        else:
            lines += "host replication all 127.0.0.1/32 trust\n"
        hba.write_text(lines)
        self.configure(
            listen_addresses="'127.0.0.1'",
            unix_socket_directories=f"'{self.data.parent}'",
            fsync="off",
            **settings,
        )

    def configure(self, **settings: str) -> None:
        """Append settings to postgresql.conf (port included)."""
        conf = self.data / "postgresql.conf"
        extra = {"port": str(self.port), **settings}
        with conf.open("a") as out:
            for key, value in extra.items():
                out.write(f"{key} = {value}\n")

    def start(self) -> None:
        """``pg_ctl start`` and wait until it accepts connections."""
        log = self.data.parent / f"{self.data.name}.log"
        _run([need("pg_ctl"), "-D", str(self.data), "-l", str(log), "-w", "start"])
        self.running = True
        _wait_port(self.port)

    def kill(self) -> None:
        """Stop at once (``-m immediate``): what a crash looks like to clients."""
        _run([need("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"])
        self.running = False

    def stop(self) -> None:
        """Stop if running (teardown)."""
        if self.running:
            with contextlib.suppress(RuntimeError):
                _run([need("pg_ctl"), "-D", str(self.data), "-m", "fast", "stop"])
            self.running = False

    def standby_of(self, primary: Cluster) -> None:
        """Make this a streaming standby of *primary* (``pg_basebackup -R``)."""
        self.data.parent.mkdir(parents=True, exist_ok=True)
        _give(self.data.parent)
        _run(
            [
                need("pg_basebackup"),
                "-D",
                str(self.data),
                "-R",
                "-X",
                "stream",
                "-h",
                "127.0.0.1",
                "-p",
                str(primary.port),
                "-U",
                "postgres",
                "-d",
                "application_name=standby",
            ]
        )
        # Once promoted it has no standby of its own: waiting for a
        # synchronous one (the primary's setting, copied) would hang commits.
        self.configure(synchronous_standby_names="''")

    def promote(self) -> None:
        """``pg_ctl promote`` and wait until the standby is a primary."""
        _run([need("pg_ctl"), "-D", str(self.data), "-w", "promote"])

    def psql(self, sql: str, db: str = "postgres") -> None:
        """Run SQL as the superuser (psycopg, synchronous)."""
        import psycopg

        with psycopg.connect(self.url(db=db), autocommit=True) as conn:
            conn.execute(sql.encode())


@contextlib.contextmanager
def cluster(root: Path, name: str, **settings: str) -> Iterator[Cluster]:
    """A started throwaway server, stopped afterwards."""
    server = Cluster(root, name)
    server.init(**settings)
    try:
        server.start()
        yield server
    finally:
        server.stop()


class Bouncer:
    """PgBouncer in transaction mode in front of one PostgreSQL server."""

    def __init__(self, root: Path, target_url: str, users: list[str]) -> None:
        parts = urlsplit(target_url)
        self.port = free_port()
        self.db = parts.path.lstrip("/") or "postgres"
        self.dir = root / "pgbouncer"
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "users.txt").write_text("".join(f'"{user}" ""\n' for user in users))
        (self.dir / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"{self.db} = host={parts.hostname or '127.0.0.1'}"
            f" port={parts.port or 5432} dbname={self.db}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {self.dir / 'users.txt'}\n"
            "pool_mode = transaction\n"
            "default_pool_size = 20\nmax_client_conn = 500\n"
            f"logfile = {self.dir / 'pgbouncer.log'}\n"
        )
        _give(self.dir)
        self._process: subprocess.Popen[bytes] | None = None

    def url(self, user: str = "postgres") -> str:
        """A URL to the database through PgBouncer."""
        return f"postgresql://{user}@127.0.0.1:{self.port}/{self.db}"

    def __enter__(self) -> Bouncer:
        self._process = subprocess.Popen(
            _as_server_user([need("pgbouncer"), str(self.dir / "pgbouncer.ini")]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_port(self.port)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def make_ca(root: Path, host: str = "localhost") -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for *host* (and 127.0.0.1).

    Returns:
        ``(ca.crt, server.crt, server.key)``.
    """
    openssl = need("openssl")
    root.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = root / "ca.key", root / "ca.crt"
    key, csr, crt = root / "server.key", root / "server.csr", root / "server.crt"
    ext = root / "san.ext"
    ext.write_text(f"subjectAltName=DNS:{host},IP:127.0.0.1\n")
    for argv in (
        [
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            str(ca_key),
            "-out",
            str(ca_crt),
            "-subj",
            "/CN=perdure test CA",
        ],
        [
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(csr),
            "-subj",
            f"/CN={host}",
        ],
        [
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(ca_crt),
            "-CAkey",
            str(ca_key),
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            str(crt),
            "-extfile",
            str(ext),
        ],
    ):
        subprocess.run([openssl, *argv], capture_output=True, check=True)
    key.chmod(0o600)
    return ca_crt, crt, key
