"""TLS options of `mlops serve` and `mlops predict`: checked before anything starts (one line, exit 2),
and a warning when a server binds beyond loopback in the clear."""
import pytest

from cli.main import main
from serving.options import is_loopback
from tests.helpers import write_tls_files


def test_binding_beyond_loopback_without_tls_warns_and_with_tls_does_not(tmp_path, started, capsys):
    files = write_tls_files(tmp_path / "tls")
    assert main(["serve", "--serving-dir", str(tmp_path), "--host", "0.0.0.0"]) == 0
    assert "mlops: warning: serving on 0.0.0.0 without TLS" in capsys.readouterr().err
    assert main(["serve", "--serving-dir", str(tmp_path), "--host", "0.0.0.0", "--ssl-cert", str(files["server_cert"]),
                 "--ssl-key", str(files["server_key"]), "--ssl-client-ca", str(files["ca"])]) == 0
    assert capsys.readouterr().err == ""
    options = started[-1][-1]
    assert options.tls.ca == files["ca"] and options.tls.server_context() is not None
    assert main(["serve", "--serving-dir", str(tmp_path)]) == 0 and capsys.readouterr().err == ""
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and not is_loopback("10.0.0.5")


@pytest.mark.parametrize("extra, message", [
    (["--ssl-cert", "CERT"], "--ssl-cert and --ssl-key go together"),
    (["--ssl-client-ca", "CA"], "go together"),
    (["--ssl-cert", "CERT", "--ssl-key", "/no/key.pem"], "--ssl-key /no/key.pem: no such file"),
    (["--ssl-cert", "CA", "--ssl-key", "CA"], "not a PEM certificate and its key"),
])
def test_bad_tls_files_are_one_line(tmp_path, started, capsys, extra, message):
    files = write_tls_files(tmp_path / "tls")
    argv = [{"CERT": str(files["server_cert"]), "CA": str(files["ca"])}.get(a, a) for a in extra]
    assert main(["serve", "--serving-dir", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and not started


def test_predict_checks_its_tls_files_first(tmp_path, capsys):
    rows = tmp_path / "rows.json"
    rows.write_text('{"instances": [1]}')
    assert main(["predict", "--model", "m", "--ssl-cert", "x.pem", str(rows)]) == 2
    assert "go together" in capsys.readouterr().err
    assert main(["predict", "--model", "m", "--ssl-ca", str(tmp_path / "ca.pem"), str(rows)]) == 2
    assert "ca.pem: no such file" in capsys.readouterr().err
