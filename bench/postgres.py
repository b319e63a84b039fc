"""A throwaway local PostgreSQL server, for measuring the backfill on Dagster's production storage.

`local_postgres(root)` creates a cluster in `root/data` with `initdb` (trust authentication, listening on
127.0.0.1 only, its unix socket in `root/socket`), starts it with `pg_ctl` on a free TCP port, creates a
database, yields the settings of dagster-postgres's `postgres_db` config, and stops the server with
`pg_ctl stop -m fast` on the way out, whatever happened inside. The server binaries come from PATH.

PostgreSQL refuses to run as root, so as root the cluster belongs to, and the server runs as, the first
existing user of `SERVER_USERS`; `root` is handed to that user (it must be able to reach it: if a parent
directory is closed to it, the cluster goes to a temporary directory instead, removed on the way out).
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SERVER_USERS = ("postgres", "nobody")
USERNAME = "dagster"
DB_NAME = "dagster"
SOCKET_PATH_MAX = 100  # sun_path is 108 bytes, and the socket's own name (`.s.PGSQL.<port>`) goes after the dir


class PostgresUnavailable(RuntimeError):
    pass


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise PostgresUnavailable(
            f"`{name}` is not on PATH: install PostgreSQL server binaries (initdb, pg_ctl, postgres; e.g. the "
            "Debian/Ubuntu package postgresql, whose binaries are in /usr/lib/postgresql/<version>/bin) "
            "and put their directory on PATH"
        )
    return found


def _server_account() -> pwd.struct_passwd | None:
    """The user to run initdb and the server as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in SERVER_USERS:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise PostgresUnavailable(
        f"PostgreSQL refuses to run as root and none of the users {', '.join(SERVER_USERS)} exists: "
        "create one (e.g. `useradd --system postgres`) or run the benchmark as a non-root user"
    )


def _run(cmd: list[str], account: pwd.struct_passwd | None, cwd: Path) -> subprocess.CompletedProcess:
    user = {} if account is None else {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}  # no PGDATA, PGPORT, ... of the caller
    if account is not None:
        env.update(HOME=str(cwd), USER=account.pw_name, LOGNAME=account.pw_name)
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False, **user)


def _check(done: subprocess.CompletedProcess, what: str) -> None:
    if done.returncode != 0:
        raise PostgresUnavailable(f"{what} failed ({done.returncode}): {(done.stderr or done.stdout).strip()}")


def _own(path: Path, account: pwd.struct_passwd | None) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if account is not None:
        os.chown(path, account.pw_uid, account.pw_gid)


def _usable_by(path: Path, account: pwd.struct_passwd | None) -> bool:
    return account is None or _run(["test", "-w", str(path)], account, Path("/")).returncode == 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _log_tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """SIGTERM raises SystemExit meanwhile, so `finally` blocks (stopping the server) still run."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def server_version() -> str:
    """E.g. `postgres (PostgreSQL) 15.13`."""
    return subprocess.run([_binary("postgres"), "--version"], capture_output=True, text=True).stdout.strip()


@contextmanager
def local_postgres(root: Path, db_name: str = DB_NAME) -> Iterator[dict]:
    """Yield {hostname, port, db_name, username} of a fresh local server, stopped on exit."""
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    _binary("postgres")  # what pg_ctl starts: fail here, clearly, rather than in its log
    createdb = Path(pg_ctl).resolve().parent / "createdb"  # the server's own client (PATH may hold a wrapper)
    createdb = str(createdb) if createdb.exists() else _binary("createdb")
    account = _server_account()
    scratch: list[Path] = []  # temporary directories to remove on the way out
    data = None
    with _terminate_as_exit():
        try:
            _own(root, account)
            if not _usable_by(root, account):
                print(f"  {root} is not writable by {account.pw_name}: the cluster goes to a temporary directory")
                root = Path(tempfile.mkdtemp(prefix="bench-pg-"))
                scratch.append(root)
                _own(root, account)
            data, sockets, log = root / "data", root / "socket", root / "server.log"
            if len(str(sockets)) > SOCKET_PATH_MAX:
                sockets = Path(tempfile.mkdtemp(prefix="bench-pgs-"))
                scratch.append(sockets)
            _own(sockets, account)
            _check(
                _run(
                    [initdb, "-D", str(data), "-U", USERNAME, "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"],
                    account,
                    root,
                ),
                "initdb",
            )
            with open(data / "postgresql.conf", "a") as conf:
                conf.write(
                    "\n# bench/postgres.py: a throwaway local server\n"
                    "listen_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{sockets}'\n"
                )
            for attempt in range(5):
                port = _free_port()  # free now; another process may take it before the server binds it
                started = _run(
                    [pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o", f"-p {port}", "start"],
                    account,
                    root,
                )
                if started.returncode == 0:
                    break
                if "Address already in use" not in _log_tail(log) or attempt == 4:
                    raise PostgresUnavailable(
                        f"pg_ctl start failed: {(started.stderr or started.stdout).strip()}\n{log}:\n{_log_tail(log)}"
                    )
            _check(
                _run([createdb, "-h", "127.0.0.1", "-p", str(port), "-U", USERNAME, db_name], account, root),
                "createdb",
            )
            yield {"hostname": "127.0.0.1", "port": port, "db_name": db_name, "username": USERNAME}
        finally:
            try:
                if data is not None and (data / "postmaster.pid").exists():
                    stopped = _run([pg_ctl, "-D", str(data), "-m", "fast", "-w", "-t", "60", "stop"], account, root)
                    if stopped.returncode != 0:
                        _run([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], account, root)
            finally:
                for path in scratch:
                    shutil.rmtree(path, ignore_errors=True)
