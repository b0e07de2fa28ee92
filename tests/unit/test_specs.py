"""The typed specs across the TFX boundary: the JSON each component receives, read back as the
same spec; unknown and missing keys refused by name."""
import json

import pytest

from components.specs import ColumnSpec, ImageInput, SpecError, TrainSpec, TransformSpec, TuneSpec
from tests.helpers import run_cli_config, write_transactions_csv


def test_a_tables_specs_round_trip_through_json(tmp_path):
    config = run_cli_config("--data", str(write_transactions_csv(tmp_path / "tx.csv")), "--label", "is_fraud",
                            home=tmp_path / "home")
    train = config.train_spec("/backups")
    assert TrainSpec.from_json(json.dumps(train.to_dict())) == train
    assert train.columns["segment"] == ColumnSpec("string") and train.labels == ("is_fraud",)
    assert train.to_dict()["left_out"] == {} and train.to_dict()["backup_root"] == "/backups"
    tune = config.tune_spec()
    assert "backup_root" not in tune.to_dict() and TuneSpec.from_dict(tune.to_dict()) == tune


def test_optional_groups_stay_out_of_the_json_when_absent():
    spec = TransformSpec(task="binary", targets=(("y", "binary"),))
    assert spec.to_dict() == {"task": "binary", "targets": [["y", "binary"]], "tensors": {}}
    image = TransformSpec(task="multiclass", targets=(("label", "multiclass"),),
                          image=ImageInput("image", 32, ("flip",), ("file",)))
    assert image.to_dict()["image"] == {"feature": "image", "size": 32, "augment": ["flip"], "ignore": ["file"]}
    assert TransformSpec.from_dict(image.to_dict()) == image


@pytest.mark.parametrize("config, message", [
    ({"task": "binary", "targets": [["y", "binary"]], "famliy": "dnn"}, "TrainSpec: unknown key(s) famliy"),
    ({"targets": [["y", "binary"]]}, "TrainSpec: missing key(s) task"),
])
def test_a_misspelt_or_missing_key_is_refused_by_name(config, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TrainSpec.from_dict(config)
