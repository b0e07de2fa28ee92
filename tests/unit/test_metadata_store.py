"""Where ML Metadata lives: the home's SQLite file by default, a MySQL/MariaDB database by
--metadata-uri or $MLOPS_METADATA_URI; a bad URI is one line without the password, exit 2."""
import pytest

from cli.main import main
from components.ports import free_port
from core.home import Home
from core.metadata_store import METADATA_ENV, MetadataStoreSpec, MetadataUriError


def test_the_home_sqlite_file_is_the_default_and_a_uri_names_a_database(tmp_path, monkeypatch):
    monkeypatch.delenv(METADATA_ENV, raising=False)
    home = Home.resolve(str(tmp_path))
    assert home.metadata.sqlite == tmp_path / "metadata.sqlite" and not home.metadata.exists()
    assert home.metadata.connection_config(readonly=True).sqlite.connection_mode == 1  # READONLY
    mysql = Home.resolve(str(tmp_path), "mysql://team:p%40ss@db.internal/mlmd").metadata
    config = mysql.connection_config()
    assert (config.mysql.host, config.mysql.port, config.mysql.database, config.mysql.user, config.mysql.password) == \
        ("db.internal", 3306, "mlmd", "team", "p@ss")
    assert str(mysql) == "mysql://team@db.internal:3306/mlmd" and mysql.exists()
    monkeypatch.setenv(METADATA_ENV, "mysql://team:secret@db2:3307/lineage")
    config = Home.resolve(str(tmp_path)).metadata.connection_config()
    assert (config.mysql.host, config.mysql.port, config.mysql.database) == ("db2", 3307, "lineage")
    with pytest.raises(MetadataUriError, match="PostgreSQL source fails TFX's input resolution"):
        MetadataStoreSpec.parse("postgresql://team:secret@pg/lineage")


@pytest.mark.parametrize("uri", ["sqlite:///x.db", "mysql://db.internal/mlmd", "mysql://u:hunter2@db/",
                                 "mysql://u:hunter2@db:port/mlmd"])
def test_a_uri_that_names_no_database_is_refused_without_its_password(uri):
    with pytest.raises(MetadataUriError) as refused:
        MetadataStoreSpec.parse(uri)
    assert "hunter2" not in str(refused.value) and str(refused.value).startswith("--metadata-uri ")


def test_the_cli_refuses_a_bad_uri_in_one_line_exit_2(tmp_path, capsys):
    assert main(["history", "fraud", "--home", str(tmp_path), "--metadata-uri", "mongodb://x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mlops: error: --metadata-uri 'mongodb://x': expected mysql://")


def test_a_pipeline_root_belongs_to_the_store_of_its_first_run(tmp_path):
    """TFX names output folders by execution id: a root written with one store is refused to another."""
    from core.metadata_store import ROOT_MARKER, bind_pipeline_root

    home_sqlite = MetadataStoreSpec(sqlite=tmp_path / "metadata.sqlite")
    team = MetadataStoreSpec.parse("mysql://team:secret@db:3306/mlmd")
    fresh = tmp_path / "pipelines" / "fresh"
    bind_pipeline_root(fresh, team, home_sqlite)
    assert (fresh / ROOT_MARKER).read_text() == "mysql://db:3306/mlmd\n"
    bind_pipeline_root(fresh, MetadataStoreSpec.parse("mysql://other_user:x@db/mlmd"), home_sqlite)  # same store
    with pytest.raises(MetadataUriError, match=r"recorded in ML Metadata at mysql://db:3306/mlmd, not "):
        bind_pipeline_root(fresh, home_sqlite, home_sqlite)
    older = tmp_path / "pipelines" / "older"  # written before roots recorded their store: the home's SQLite
    (older / "Transform").mkdir(parents=True)
    with pytest.raises(MetadataUriError, match=f"recorded in ML Metadata at {home_sqlite.sqlite}, not mysql://"):
        bind_pipeline_root(older, team, home_sqlite)
    bind_pipeline_root(older, home_sqlite, home_sqlite)
    assert "secret" not in (fresh / ROOT_MARKER).read_text()


def test_a_run_whose_database_store_does_not_answer_stops_before_its_pipeline_in_one_line(tmp_path):
    """Named with what failed, in about the preflight's time, without the password, nothing written
    (ml-metadata's own error would be "mysql_real_connect failed: errno: , error:", after the imports)."""
    import subprocess
    import sys

    from tests.helpers import write_transactions_csv

    port = free_port()  # nothing listens on it
    home = tmp_path / "home"
    done = subprocess.run([sys.executable, "-m", "cli.main", "run", "--home", str(home), "--data",
                           str(write_transactions_csv(tmp_path / "t.csv")), "--label", "is_fraud", "--no-tracking",
                           "--metadata-uri", f"mysql://team:hunter2@127.0.0.1:{port}/mlmd"],
                          capture_output=True, text=True, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert lines[0] == (f"mlops: error: ML Metadata at mysql://team@127.0.0.1:{port}/mlmd: nothing answers at "
                        f"127.0.0.1:{port} (Connection refused)")
    assert "hunter2" not in done.stdout + done.stderr and not home.exists()
