"""models.config: written with TF Serving's own proto, bad files named and kept, concurrent writers."""
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving.runtime import model_config

REPO = Path(__file__).resolve().parents[2]


REPO = Path(__file__).resolve().parents[2]


def test_written_config_parses_with_tf_servings_proto(tmp_path):
    path = model_config.config_path(tmp_path)
    model_config.ensure_model(path, "fraud")
    model_config.ensure_model(path, "housing", latest_versions=1)
    model_config.set_labels(path, "fraud", {"stable": 1700000000, "canary": 1700000100})
    parsed = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(path.read_text(), parsed)  # what tensorflow_model_server --model_config_file does
    models = {m.name: m for m in parsed.model_config_list.config}
    assert set(models) == {"fraud", "housing"}
    assert models["fraud"].base_path == "fraud" and models["fraud"].model_platform == "tensorflow"
    assert models["fraud"].model_version_policy.latest.num_versions == 2
    assert dict(models["fraud"].version_labels) == {"stable": 1700000000, "canary": 1700000100}
    model_config.ensure_model(path, "fraud")  # an existing entry keeps its labels
    assert dict(model_config.find_model(model_config.read(path), "fraud").version_labels)["canary"] == 1700000100
    model_config.set_labels(path, "fraud", {"canary": None})
    model_config.set_specific_versions(path, "fraud", [1700000000])
    fraud = model_config.find_model(model_config.read(path), "fraud")
    assert dict(fraud.version_labels) == {"stable": 1700000000}
    assert list(fraud.model_version_policy.specific.versions) == [1700000000]


def test_bad_config_names_the_file_and_field_and_is_not_overwritten(tmp_path):
    path = model_config.config_path(tmp_path)
    path.write_text('model_config_list { config { name: "x" base_path: "x" mystery: 1 } }')
    with pytest.raises(model_config.ModelConfigError, match=r"models.config.*mystery"):
        model_config.read(path)
    with pytest.raises(model_config.ModelConfigError):
        model_config.ensure_model(path, "y")
    assert "mystery" in path.read_text()
    path.write_text('model_config_list { config { name: "../etc" base_path: "/etc" } }')
    with pytest.raises(model_config.ModelConfigError, match="not a valid name"):
        model_config.read(path)
    with pytest.raises(model_config.ModelConfigError, match="not a valid name"):
        model_config.ensure_model(model_config.config_path(tmp_path / "other"), "a/../../b")


def test_concurrent_writers_lose_no_change(tmp_path):
    path = model_config.config_path(tmp_path)
    code = ("import sys; from serving.runtime import model_config as m; p = m.config_path(sys.argv[1]); "
            "[m.ensure_model(p, f'model{sys.argv[2]}_{i}') for i in range(15)]")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path), str(k)]) for k in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0] * 4
    names = {m.name for m in model_config.read(path).model_config_list.config}
    assert names == {f"model{k}_{i}" for k in range(4) for i in range(15)}
