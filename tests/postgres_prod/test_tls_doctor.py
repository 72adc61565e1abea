"""TLS with ``sslmode=verify-full`` against a throwaway CA, and ``perdure doctor``.

The TLS server accepts only ``hostssl`` connections; its certificate is
signed by a CA made here with openssl. The doctor runs in-process
(``perdure.cli.main``) against it, against a server with autovacuum off,
through PgBouncer, against nothing, and against a SQLite file.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
import pytest
from _app import ACTIVITIES, ORCHESTRATIONS
from _servers import Bouncer, cluster, make_ca, pg_url, server_root

import perdure
from perdure import _doctor_pg
from perdure.cli import main
from perdure.providers.helpers import load_migrations

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
__all__ = ["server_root"]  # a fixture


def _doctor(
    capsys: pytest.CaptureFixture[str], url: str, *extra: str
) -> tuple[int, str, str]:
    status = main(["doctor", "--db", url, *extra])
    out, err = capsys.readouterr()
    return status, out, err


def test_tls_verify_full(server_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca, crt, key = make_ca(server_root / "tls")
    other_ca, _, _ = make_ca(server_root / "other")
    with cluster(
        server_root,
        "tlsdb",
        ssl="on",
        ssl_cert_file=f"'{crt}'",
        ssl_key_file=f"'{key}'",
        hba_ssl_only="on",
    ) as server:
        base = f"postgresql://postgres@localhost:{server.port}/postgres"
        url = f"{base}?sslmode=verify-full&sslrootcert={ca}"

        async def run() -> None:
            async with perdure.Runtime(
                url, orchestrations=ORCHESTRATIONS, activities=ACTIVITIES
            ) as rt:
                for i in range(5):
                    await rt.client.start_orchestration(f"t{i}", "chain", i)
                for i in range(5):
                    state = await rt.client.wait_for_orchestration(f"t{i}", 30)
                    assert state.output == i + 3
            async with perdure.Client(url) as client:
                assert (await client.get_status("t0")) is not None

        asyncio.run(run())
        status, out, err = _doctor(capsys, url)
        assert status == 0, out + err
        latest = max(version for version, _ in load_migrations("postgres"))
        assert "schema" in out and f"version {latest}" in out and "healthy" in out
        # A certificate from another CA, or no TLS at all, is refused.
        wrong = f"{base}?sslmode=verify-full&sslrootcert={other_ca}"
        status, out, err = _doctor(capsys, wrong)
        assert status == 1 and "certificate verify failed" in err
        status, out, err = _doctor(capsys, f"{base}?sslmode=disable")
        assert status == 1 and f"localhost:{server.port}" in err


def test_doctor_finds_problems(
    server_root: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with cluster(server_root, "sick", autovacuum="off", max_connections="20") as db:
        status, out, err = _doctor(capsys, db.url())
        assert status == 1
        assert err.count("\n") == 1 and "autovacuum" in err, err
        assert f"127.0.0.1:{db.port}" in err
        status, out, err = _doctor(capsys, db.url(), "--runtimes", "4")
        assert "FAIL connections" in out, out
        # A transaction left open holds back vacuum everywhere.
        monkeypatch.setattr(_doctor_pg, "_MAX_XACT_AGE", 0.2)
        with psycopg.connect(db.url()) as idle:
            idle.execute("SELECT txid_current()")
            asyncio.run(asyncio.sleep(0.5))
            status, out, err = _doctor(capsys, db.url())
            assert "FAIL xmin horizon" in out, out


def test_doctor_unreachable_names_host_never_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, err = _doctor(
        capsys, "postgresql://app:s3cret@127.0.0.1:1/db?connect_timeout=2"
    )
    assert status == 1
    assert "127.0.0.1:1" in err and "s3cret" not in out + err
    assert "Traceback" not in out + err and err.count("\n") == 1


def test_doctor_through_pgbouncer(
    server_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Bouncer(server_root, pg_url(), ["postgres"]) as bouncer:
        _, out, _ = _doctor(capsys, bouncer.url())
    assert "pooler" in out and "detected" in out, out


def test_doctor_sqlite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    status, out, err = _doctor(capsys, url)
    assert status == 1 and "no database" in err

    async def create() -> None:
        async with perdure.Client(url) as client:
            await client.get_status("x")

    asyncio.run(create())
    status, out, err = _doctor(capsys, url)
    assert status == 0, out + err
    assert "SQLite" in out and "same as the code" in out
