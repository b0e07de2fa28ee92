"""Where ML Metadata lives: the home's SQLite file by default, a MySQL/MariaDB database by
--metadata-uri or $MLOPS_METADATA_URI; a bad URI is one line without the password, exit 2."""
import pytest

from cli.main import main
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
