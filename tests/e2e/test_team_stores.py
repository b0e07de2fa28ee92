"""A team's shared stores, for real: PostgreSQL (the OS's server, our own instance on loopback) as
the backend store of `mlflow server --app-name basic-auth` with proxied artifacts, and ML Metadata
in MariaDB (`--metadata-uri mysql://...`), all started by ops.team_stores.
Two concurrent `mlops run` of one pipeline track and each register their own pushed version through
it under the admin's credentials (MLflow's own variables); `mlops promote` and `mlops rollback` move
the aliases; a caller without credentials is refused in one line before a run pushes anything, and a
read-only account can read but not promote."""
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.main import main
from release.mlflow_registry import CHALLENGER, CHAMPION, PIPELINE_RUN_TAG, SERVING_VERSION_TAG
from tests.helpers import DNN_ALONE

pytestmark = [pytest.mark.pipeline, pytest.mark.mlflow_server]
NAME = "team"
MLOPS = str(Path(sys.executable).with_name("mlops"))


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    from ops import team_stores

    running = team_stores.start(tmp_path_factory.mktemp("team-stores"))
    assert running.metadata_uri, "no MariaDB server programs (apt-get install mariadb-server): ML Metadata's test"
    yield running
    team_stores.stop(running)


def _as(user: str, password: str) -> dict:
    return {"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password}


@pytest.fixture
def admin(stores, monkeypatch):
    from ops.team_stores import ADMIN_USER

    for key, value in _as(ADMIN_USER, stores.admin_password).items():
        monkeypatch.setenv(key, value)
    return stores


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("team-home")


def _client(stores):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=stores.tracking_uri, registry_uri=stores.tracking_uri)


def test_concurrent_runs_take_turns_register_and_are_promoted_and_rolled_back(admin, home, transactions_csv,
                                                                              capsys):
    """Two `mlops run` of one pipeline on one home, the second started once the first holds the run
    lock, against the shared stores: the second waits for the first (saying for which run), each
    summary names its own run with every component
    finished, and each pushed version is registered in PostgreSQL, tagged with the run that pushed it,
    its lineage in MariaDB; `mlops promote` and `mlops rollback` then move the aliases."""
    first_run, second_run = _concurrent_runs(admin, home, transactions_csv)
    client = _client(admin)
    versions = client.search_model_versions(f"name='{NAME}'")
    pushed = {p.name for p in (home / "serving" / NAME).iterdir() if p.name.isdigit()}
    assert {v.tags.get(SERVING_VERSION_TAG) for v in versions} == pushed and len(pushed) == 2
    assert {v.tags[PIPELINE_RUN_TAG] for v in versions} == {first_run, second_run}
    assert sorted(int(v.version) for v in versions) == [1, 2]
    uri = ["--home", str(home), "--tracking-uri", admin.tracking_uri]
    assert main(["promote", NAME, *uri, "--by", "ci", "--min-improvement", "-1", "--max-slice-drop", "1"]) == 0
    champion = int(client.get_registered_model(NAME).aliases[CHAMPION])
    assert main(["promote", NAME, *uri, "--by", "ci", "--min-improvement", "-1", "--max-slice-drop", "1"]) in (0, 1)
    capsys.readouterr()
    aliases = client.get_registered_model(NAME).aliases
    if int(aliases[CHAMPION]) != champion:  # the second version was promoted too: roll back to the first
        assert main(["rollback", NAME, *uri, "--by", "oncall"]) == 0
        assert int(client.get_registered_model(NAME).aliases[CHAMPION]) == champion
    backend = _backend_tables(admin)
    assert backend["registered_models"] == 1 and backend["model_versions"] == 2
    # the lineage is in MariaDB: both runs' contexts, and no SQLite file in the home
    from ml_metadata import metadata_store

    from core.metadata_store import MetadataStoreSpec

    lineage = metadata_store.MetadataStore(MetadataStoreSpec.parse(admin.metadata_uri).connection_config())
    runs = [c.name for c in lineage.get_contexts_by_type("pipeline_run")]
    assert {first_run, second_run} <= set(runs) and not (home / "metadata.sqlite").exists()


def _concurrent_runs(stores, home: Path, csv: Path):
    """The two runs' ids, the second started while the first runs (each its own `mlops run` process)."""
    def command(epochs: int) -> list:
        return [MLOPS, "run", "--data", str(csv), "--label", "is_fraud", "--task", "binary", "--name", NAME,
                "--home", str(home), "--no-edge", "--threshold", "0.0", "--max-drop", "1.0", "--hparam",
                f"epochs={epochs}", *DNN_ALONE, "--metadata-uri", stores.metadata_uri,
                "--tracking-uri", stores.tracking_uri]

    first = subprocess.Popen(command(1), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=dict(os.environ))
    # the second starts once the first holds the run lock: a fixed 2 s was not always enough on a busy
    # host (the second took the lock first, and the first waited)
    lock, deadline = home / "locks" / f"{NAME}.run.lock", time.monotonic() + 300
    while not (lock.is_file() and f"(pid {first.pid})" in lock.read_text()):
        assert first.poll() is None and time.monotonic() < deadline, "the first run never took the run lock"
        time.sleep(0.2)
    second = subprocess.run(command(2), capture_output=True, text=True, timeout=600, env=dict(os.environ))
    first_out, _ = first.communicate(timeout=600)
    assert first.returncode == 0 and second.returncode == 0, (first_out[-2000:], second.stdout[-2000:])
    run_line = re.compile(rf"^pipeline '{NAME}' run (\S+) ", re.M)
    (first_run,), (second_run,) = run_line.findall(first_out), run_line.findall(second.stdout)
    assert first_run != second_run and "waiting" not in first_out
    assert f"waiting for run {first_run} " in second.stdout and f"of pipeline {NAME}" in second.stdout
    for out in (first_out, second.stdout):  # every component finished, as the run's own report says
        assert "RUNNING" not in out and " ? " not in out and "[pushed]" in out
    return first_run, second_run


def _backend_tables(stores) -> dict:
    """Rows of MLflow's tables as PostgreSQL holds them: the registry lives there, not in a file."""
    import psycopg2

    with psycopg2.connect(stores.backend_uri) as connection, connection.cursor() as cursor:
        counts = {}
        for table in ("registered_models", "model_versions"):
            cursor.execute(f"SELECT count(*) FROM {table}")
            counts[table] = cursor.fetchone()[0]
    return counts


def test_a_caller_without_credentials_is_refused_before_anything_is_pushed(stores, home, transactions_csv,
                                                                          monkeypatch, capsys):
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    versions = sorted((home / "serving" / NAME).iterdir()) if (home / "serving" / NAME).exists() else []
    code = main(["run", "--data", str(transactions_csv), "--label", "is_fraud", "--name", NAME, "--home", str(home),
                 "--tracking-uri", stores.tracking_uri])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    assert err[0] == (f"mlops: error: MLflow tracking server {stores.tracking_uri} does not accept a caller without "
                      "credentials: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD to an account of its "
                      "basic-auth app")
    after = sorted((home / "serving" / NAME).iterdir()) if (home / "serving" / NAME).exists() else []
    assert after == versions
    assert main(["history", NAME, "--home", str(home), "--tracking-uri", stores.tracking_uri]) == 1


def test_a_read_only_account_reads_but_cannot_promote(admin, home, capsys, monkeypatch):
    from mlflow.server import get_app_client

    admin_client = _client(admin)  # the first test's two versions: the one not serving is the challenger
    other = "2" if admin_client.get_registered_model(NAME).aliases[CHAMPION] == "1" else "1"
    admin_client.set_registered_model_alias(NAME, CHALLENGER, other)
    auth = get_app_client("basic-auth", tracking_uri=admin.tracking_uri)
    auth.create_user(username="viewer", password="viewer-pass-1")  # the server's default permission: READ
    for key, value in _as("viewer", "viewer-pass-1").items():
        monkeypatch.setenv(key, value)
    uri = ["--home", str(home), "--tracking-uri", admin.tracking_uri]
    assert main(["history", NAME, *uri]) == 0
    capsys.readouterr()
    aliases = admin_client.get_registered_model(NAME).aliases
    served = [path.read_bytes() if path.exists() else None
              for path in (home / "serving" / "models.config", home / "serving" / "traffic.json")]
    for command, action in ((["rollback", NAME, *uri, "--to", other, "--by", "viewer"], "a rollback"),
                            (["promote", NAME, *uri, "--by", "viewer", "--min-improvement", "-1", "--max-slice-drop",
                              "1"], "a promotion"),
                            (["promote", NAME, *uri, "--shadow"], "a shadow"),
                            (["promote", NAME, *uri, "--canary", "0"], "the end of a canary")):
        code = main(command)
        captured = capsys.readouterr()
        err = captured.err.strip().splitlines()
        assert code == 1 and len(err) == 1, (command, captured.out[-1500:], err)
        # asked of the auth app before anything is evaluated or written: serving's files stay as they were
        assert f"refuses user 'viewer' {action} of registered model '{NAME}' (permission denied: it holds READ" \
            in err[0], (command, err)
        assert "nothing changed" in err[0] and captured.out == "", (command, captured.out[-500:])
    assert _client(admin).get_registered_model(NAME).aliases == aliases
    assert [path.read_bytes() if path.exists() else None
            for path in (home / "serving" / "models.config", home / "serving" / "traffic.json")] == served
