"""A throwaway PostgreSQL server for the study tests: ``initdb`` into a temporary
directory, ``pg_ctl start`` on a free port with its unix socket in that directory, stopped
at the end.  As root (CI) the server runs as the ``postgres`` user (initdb refuses root).

The server binaries come from Debian's ``postgresql`` package (``.ci/run`` installs it).
Without them the tests are skipped, unless ``GLOMPO_REQUIRE_POSTGRES`` is set (CI sets it):
then they fail.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return None if initdb is None else Path(initdb).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prefix() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def stop_server(socket_dir: str) -> None:
    """Stop the server of :func:`postgres_server` at once (``-m immediate``: its clients'
    connections break); :func:`start_server` starts it again."""
    subprocess.run([*_prefix(), str(_bin() / "pg_ctl"), "-D", str(Path(socket_dir) / "data"), "-m", "immediate",
                    "-w", "stop"], check=True, capture_output=True)


def start_server(socket_dir: str, port: int) -> None:
    """Start the server of :func:`postgres_server` (stopped by :func:`stop_server`) again."""
    subprocess.run([*_prefix(), str(_bin() / "pg_ctl"), "-D", str(Path(socket_dir) / "data"), "-l",
                    str(Path(socket_dir) / "log"), "-w", "-t", "60", "-o",
                    f"-p {port} -k {socket_dir} -c listen_addresses='' -c fsync=off", "start"],
                   check=True, capture_output=True)


@contextmanager
def postgres_server() -> Iterator[tuple[str, int]]:
    """Yields ``(socket_dir, port)`` of a running server (user ``postgres``, trust auth)."""
    bindir = _bin()
    if bindir is None:
        if os.environ.get("GLOMPO_REQUIRE_POSTGRES"):
            pytest.fail("GLOMPO_REQUIRE_POSTGRES is set but the PostgreSQL server binaries (initdb, pg_ctl) "
                        "are missing: apt-get install postgresql")
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    root = Path(tempfile.mkdtemp(prefix="glpg"))
    prefix = _prefix()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", _free_port()
    run = dict(check=True, capture_output=True, text=True)
    subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                    "--no-sync"], **run)
    start_server(str(root), port)
    try:
        yield str(root), port
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def new_database(socket_dir: str, port: int, name: str) -> str:
    """Create database ``name`` on the server; returns its study URL."""
    import psycopg

    with psycopg.connect(host=socket_dir, port=port, user="postgres", dbname="postgres", autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql://postgres@/{name}?host={socket_dir}&port={port}"
