"""A real PostgreSQL server (Debian's package) for one test: its own data folder, a random loopback port,
TLS on (deploy/dagster.yaml asks for `sslmode: require`) with a throwaway self-signed certificate, one
database and a password user. PostgreSQL refuses to run as root: as root it runs as the `postgres` user."""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg2


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    db_name: str
    username: str
    password: str


def _bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not found:
        raise RuntimeError("PostgreSQL not found: apt-get install postgresql (deploy/ci/instance_test.sh does)")
    return str(found[-1])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def postgres_server() -> Iterator[Postgres]:
    server = Postgres("127.0.0.1", _free_port(), "dagster", "dagster", "a-test-password")
    # Not under pytest's tmp folder: the postgres user must be able to reach its data folder.
    root = Path(tempfile.mkdtemp(prefix="chargeback-postgres-"))
    as_owner: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        as_owner = ["runuser", "-u", "postgres", "--"]
    data, password_file = root / "data", root / "password"
    subprocess.run([*as_owner, "sh", "-c", f"umask 077 && echo '{server.password}' > {password_file}"], check=True)
    subprocess.run(
        [*as_owner, _bin("initdb"), "-D", str(data), "-U", server.username, f"--pwfile={password_file}",
         "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8"],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        [*as_owner, "openssl", "req", "-new", "-x509", "-days", "1", "-nodes", "-subj", "/CN=127.0.0.1",
         "-keyout", str(root / "server.key"), "-out", str(root / "server.crt")],
        check=True, capture_output=True,
    )  # fmt: skip
    log = root / "postgres.log"
    process = subprocess.Popen(
        [*as_owner, _bin("postgres"), "-D", str(data), "-p", str(server.port), "-k", str(root),
         "-c", "listen_addresses=127.0.0.1", "-c", "ssl=on", "-c", f"ssl_cert_file={root / 'server.crt'}",
         "-c", f"ssl_key_file={root / 'server.key'}", "-c", "max_connections=200"],
        stdout=subprocess.DEVNULL, stderr=log.open("w"),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                connection = psycopg2.connect(
                    host=server.host, port=server.port, user=server.username, password=server.password,
                    dbname="postgres", sslmode="require",
                )  # fmt: skip
                break
            except psycopg2.OperationalError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.5)
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {server.db_name}")
        connection.close()
        yield server
    finally:
        # pg_ctl's fast shutdown, as the server's owner: SIGTERM (smart) would wait for every client still
        # connected, and runuser passes on SIGTERM but not SIGINT.
        stopped = subprocess.run(
            [*as_owner, _bin("pg_ctl"), "stop", "-D", str(data), "-m", "fast", "-t", "30"], capture_output=True
        )
        if stopped.returncode != 0:
            process.terminate()  # e.g. the server never wrote its pid file
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)
