"""A team's shared stores on this machine: PostgreSQL (the OS's server binaries, an instance of our
own in a folder, on a free loopback port, password login) as MLflow's backend store and the basic-
auth app's user store, `mlflow server --app-name basic-auth` in front of it with proxied artifacts,
and, where the OS has MariaDB's server, a MariaDB instance holding ML Metadata (``--metadata-uri``).
`make services` and the team-stores e2e test start them; pids, ports and credentials go to a state
file (mode 0600) in the folder.

    python -m ops.team_stores start|stop|status [STATE_DIR]   (default STATE_DIR: ./.mlops/services)

PostgreSQL (and MariaDB) refuse to run as root: under root their folders are handed to the
``postgres`` (``mysql``) account and their programs run as it (``runuser``); where that account
cannot reach the state folder (a private temporary folder) the database lives in a temporary folder
of its own, removed on stop."""
import glob
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import List, Optional, Tuple

from components.ports import free_port, free_ports
from ops.beam_services import DEFAULT_STATE_DIR, _start, _wait_for_port, alive

STATE_FILE = "team-stores.json"
POSTGRES_ACCOUNT, MARIADB_ACCOUNT = "postgres", "mysql"  # the OS accounts the servers run as when we are root
MARIADB_SERVER, MARIADB_INSTALL = "/usr/sbin/mariadbd", "mariadb-install-db"
DATABASE_USER = "mlops"
ADMIN_USER = "admin"
READY_SECONDS = 180  # `mlflow server` migrates a fresh database and boots its workers: bounded


class TeamStoresError(RuntimeError):
    """A store that cannot start (no PostgreSQL binaries, a server that exits): one line."""


@dataclass(frozen=True)
class TeamStores:
    folder: str
    postgres_port: int
    mlflow_port: int
    database_password: str
    admin_password: str
    pids: List[int]  # each the leader of its own process group
    postgres_root: str = ""  # data, sockets
    postgres_temporary: bool = False  # removed on stop
    mariadb_port: int = 0  # 0: no MariaDB (its server programs are not installed)
    mariadb_root: str = ""
    mariadb_temporary: bool = False

    @property
    def backend_uri(self) -> str:
        return self.database_uri("mlflow")

    def database_uri(self, database: str) -> str:
        return f"postgresql://{DATABASE_USER}:{self.database_password}@127.0.0.1:{self.postgres_port}/{database}"

    @property
    def tracking_uri(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def metadata_uri(self) -> str:
        """ML Metadata in MariaDB (core.metadata_store), "" without MariaDB."""
        if not self.mariadb_port:
            return ""
        return f"mysql://{DATABASE_USER}:{self.database_password}@127.0.0.1:{self.mariadb_port}/mlmd"


def postgres_bin() -> Path:
    """The newest PostgreSQL's programs folder (Debian keeps them out of PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise TeamStoresError("no PostgreSQL server programs (initdb): apt-get install postgresql")


def _as_owner(command: List[str], account: str = POSTGRES_ACCOUNT) -> List[str]:
    return ["runuser", "-u", account, "--", *command] if os.geteuid() == 0 else command


def _owned_dir(path: Path, account: str) -> Path:
    """``path`` made, and handed to the account its server runs as (when we are root)."""
    path.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(path, account)
    return path


def _server_root(folder: Path, name: str, account: str) -> Tuple[Path, bool]:
    """(the folder a database server's data and sockets go in, whether it is temporary), owned by
    the account the server runs as."""
    root, temporary = folder / name, False
    if os.geteuid() == 0 and subprocess.run(_as_owner(["test", "-x", str(folder)], account),
                                            capture_output=True).returncode != 0:
        root, temporary = Path(tempfile.mkdtemp(prefix=f"mlops-{name}-")), True
    return _owned_dir(root, account), temporary


def _init_postgres(data: Path, password: str) -> None:
    """A fresh cluster whose only login is DATABASE_USER with a password (scram-sha-256 over TCP)."""
    secret = data.parent / "pgpass.tmp"
    secret.write_text(password + "\n")
    if os.geteuid() == 0:
        shutil.chown(secret, POSTGRES_ACCOUNT)
    done = subprocess.run(_as_owner([str(postgres_bin() / "initdb"), "-D", str(data), "-U", DATABASE_USER,
                                     "--auth-host=scram-sha-256", "--auth-local=scram-sha-256",
                                     f"--pwfile={secret}", "-E", "UTF8", "--no-instructions"]),
                          capture_output=True, text=True, timeout=120)
    secret.unlink()
    if done.returncode != 0:
        raise TeamStoresError(f"initdb failed: {done.stderr.strip().splitlines()[-1:]}")


def _create_databases(stores: TeamStores, names: List[str]) -> None:
    import psycopg2

    connection = psycopg2.connect(stores.database_uri("postgres"))
    connection.autocommit = True  # CREATE DATABASE cannot run in a transaction
    with connection.cursor() as cursor:
        for name in names:
            cursor.execute(f"CREATE DATABASE {name}")
    connection.close()


def _auth_config(folder: Path, stores: TeamStores) -> Path:
    """MLflow's basic-auth settings: users in PostgreSQL, everyone may read, the admin set here."""
    path = folder / "basic_auth.ini"
    path.write_text("[mlflow]\ndefault_permission = READ\n"
                    f"database_uri = {stores.database_uri('mlflow_auth')}\n"
                    f"admin_username = {ADMIN_USER}\nadmin_password = {stores.admin_password}\n"
                    "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    path.chmod(0o600)
    return path


def _wait_for_mlflow(stores: TeamStores, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TeamStoresError(f"mlflow server exited ({process.returncode}); see {log}")
        try:
            with urllib.request.urlopen(f"{stores.tracking_uri}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TeamStoresError(f"mlflow server did not answer in {READY_SECONDS} s; see {log}")


def start(folder: Path) -> TeamStores:
    """PostgreSQL, then `mlflow server` on it, both answering when this returns."""
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        os.chmod(folder, 0o755)  # the postgres account reaches its data folder through this one
    root, temporary = _server_root(folder, "postgres", POSTGRES_ACCOUNT)
    earlier = read(folder)  # a store stopped before: its database and passwords are kept
    kept = earlier is not None and not temporary and (root / "data").is_dir()
    passwords = (earlier.database_password, earlier.admin_password) if kept else \
        (secrets.token_urlsafe(16), secrets.token_urlsafe(16))
    stores = TeamStores(str(folder), *free_ports(2), *passwords, [], str(root), temporary)
    data, sockets = root / "data", root / "sockets"
    if not kept:
        shutil.rmtree(data, ignore_errors=True)
        _init_postgres(data, stores.database_password)
    _owned_dir(sockets, POSTGRES_ACCOUNT)
    postgres = _start(_as_owner([str(postgres_bin() / "postgres"), "-D", str(data), "-p", str(stores.postgres_port),
                                 "-k", str(sockets), "-h", "127.0.0.1"]), folder / "postgres.log")
    stores = TeamStores(**{**asdict(stores), "pids": [postgres.pid]})
    _save(stores)
    try:
        _wait_for_port(stores.postgres_port, postgres, folder / "postgres.log")
        if not kept:
            _create_databases(stores, ["mlflow", "mlflow_auth"])
        # the CSRF key of the auth app's forms: one per store, kept with it (a restart keeps sessions valid)
        env = {"MLFLOW_AUTH_CONFIG_PATH": str(_auth_config(folder, stores)),
               "MLFLOW_FLASK_SERVER_SECRET_KEY": stores.admin_password + stores.database_password}
        server = _start_mlflow(stores, folder, env)
        stores = TeamStores(**{**asdict(stores), "pids": [postgres.pid, server.pid]})
        _save(stores)
        _wait_for_mlflow(stores, server, folder / "mlflow-server.log")
        if Path(MARIADB_SERVER).exists():
            stores = _start_mariadb(stores, folder, earlier if kept else None)
    except (RuntimeError, OSError):
        stop(stores)
        raise
    return stores


def _start_mariadb(stores: TeamStores, folder: Path, earlier: Optional[TeamStores]) -> TeamStores:
    """MariaDB on a free loopback port with ML Metadata's database and our login (TCP only)."""
    root, temporary = _server_root(folder, "mariadb", MARIADB_ACCOUNT)
    fresh = earlier is None or temporary or not (root / "data").is_dir()
    if fresh:
        shutil.rmtree(root / "data", ignore_errors=True)
        done = subprocess.run([MARIADB_INSTALL, f"--user={MARIADB_ACCOUNT}", f"--datadir={root / 'data'}",
                               "--auth-root-authentication-method=socket", "--skip-test-db"],
                              capture_output=True, text=True, timeout=180)
        if done.returncode != 0:
            raise TeamStoresError(f"mariadb-install-db failed: {(done.stderr or done.stdout).strip()[-300:]}")
    port, socket_path, scratch = free_port(), root / "mariadb.sock", _owned_dir(root / "tmp", MARIADB_ACCOUNT)
    server = _start(_as_owner([MARIADB_SERVER, f"--datadir={root / 'data'}", f"--port={port}",
                               f"--socket={socket_path}", f"--tmpdir={scratch}", f"--pid-file={root / 'mariadb.pid'}",
                               "--bind-address=127.0.0.1"], MARIADB_ACCOUNT),
                    folder / "mariadb.log")
    stores = TeamStores(**{**asdict(stores), "pids": [*stores.pids, server.pid], "mariadb_port": port,
                           "mariadb_root": str(root), "mariadb_temporary": temporary})
    _save(stores)
    _wait_for_port(port, server, folder / "mariadb.log")
    if fresh:
        grant = (f"CREATE DATABASE mlmd; CREATE USER '{DATABASE_USER}'@'127.0.0.1' IDENTIFIED BY "
                 f"'{stores.database_password}'; GRANT ALL ON mlmd.* TO '{DATABASE_USER}'@'127.0.0.1';")
        done = subprocess.run(["mariadb", f"--socket={socket_path}", "-uroot", "-e", grant],
                              capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise TeamStoresError(f"MariaDB refused the setup: {done.stderr.strip()[-300:]}")
    return stores


def _start_mlflow(stores: TeamStores, folder: Path, env: dict) -> subprocess.Popen:
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    command = [mlflow, "server", "--app-name", "basic-auth", "--backend-store-uri", stores.backend_uri,
               "--artifacts-destination", str(folder / "mlflow-artifacts"), "--serve-artifacts",
               "--host", "127.0.0.1", "--port", str(stores.mlflow_port), "--workers", "1"]
    os.environ.update(env)  # _start passes this process's environment on
    try:
        return _start(command, folder / "mlflow-server.log")
    finally:
        for key in env:
            os.environ.pop(key, None)


def _save(stores: TeamStores) -> None:
    path = Path(stores.folder) / STATE_FILE
    path.touch(mode=0o600)
    path.write_text(json.dumps(asdict(stores)))


def read(folder: Path) -> Optional[TeamStores]:
    path = Path(folder) / STATE_FILE
    return TeamStores(**json.loads(path.read_text())) if path.is_file() else None


def stop(stores: TeamStores) -> None:
    """MariaDB and the MLflow server, then PostgreSQL (a fast shutdown); the databases stay for the
    next start unless they were temporary."""
    import signal

    for pid in reversed(stores.pids):
        try:
            os.killpg(pid, signal.SIGINT if pid == stores.pids[0] else signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            continue
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.1)
    if stores.mariadb_temporary:
        shutil.rmtree(stores.mariadb_root, ignore_errors=True)
    if stores.postgres_temporary:
        shutil.rmtree(stores.postgres_root, ignore_errors=True)
        (Path(stores.folder) / STATE_FILE).unlink(missing_ok=True)
    else:  # the passwords stay with the database for the next start
        _save(TeamStores(**{**asdict(stores), "pids": []}))


def _print(stores: TeamStores) -> None:
    print(f"MLflow (PostgreSQL backend, basic auth): {stores.tracking_uri}; PostgreSQL on 127.0.0.1:"
          f"{stores.postgres_port}; state in {Path(stores.folder) / STATE_FILE}")
    print(f"  export MLFLOW_TRACKING_URI={stores.tracking_uri} MLFLOW_TRACKING_USERNAME={ADMIN_USER} "
          f"MLFLOW_TRACKING_PASSWORD=<admin_password in the state file>")
    if stores.metadata_uri:
        print(f"ML Metadata (MariaDB) on 127.0.0.1:{stores.mariadb_port}: --metadata-uri "
              f"mysql://{DATABASE_USER}:<database_password in the state file>@127.0.0.1:{stores.mariadb_port}/mlmd")


def _up(state: Optional[TeamStores]) -> bool:
    return bool(state and state.pids and all(alive(pid) for pid in state.pids))


def main(argv: List[str]) -> int:
    action = argv[0] if argv else "start"
    folder = Path(argv[1]) if len(argv) > 1 else DEFAULT_STATE_DIR
    running = read(folder)
    if action == "start":
        if _up(running):
            _print(running)
            return 0
        if running and running.pids:
            stop(running)
        try:
            _print(start(folder))
        except (RuntimeError, OSError) as e:  # TeamStoresError, a server that exits or never listens
            print(f"team stores: {e}", file=sys.stderr)
            return 1
        return 0
    if action == "stop":
        if running and running.pids:
            stop(running)
        return 0
    if action == "status":
        if _up(running):
            _print(running)
            return 0
        print("team stores: not running", file=sys.stderr)
        return 1
    print(f"usage: python -m ops.team_stores start|stop|status [STATE_DIR] (not {action!r})", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
