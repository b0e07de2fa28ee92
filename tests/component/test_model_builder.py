"""Models built through the family registry: shapes, a training step, and clear errors."""
import numpy as np
import pytest
import tf_keras as keras

from components.models.base import FeatureSpec
from components.models.builder import build_model
from components.models.registry import UnsupportedModelError

SPEC = FeatureSpec(numeric=("a_xf", "b_xf"), categorical={"c_xf": 4})


def _batch(n: int = 16):
    rng = np.random.default_rng(0)
    return {"a_xf": rng.normal(size=(n, 1)).astype("float32"), "b_xf": rng.normal(size=(n, 1)).astype("float32"),
            "c_xf": rng.integers(0, 4, size=(n, 1))}


@pytest.mark.parametrize("task, classes, labels, width", [
    ("binary", 2, np.array([0, 1] * 8), 1),
    ("multiclass", 3, np.array([0, 1, 2, 1] * 4), 3),
    ("regression", 2, np.linspace(0, 1, 16).astype("float32"), 1),
])
def test_each_task_builds_trains_and_predicts(task, classes, labels, width):
    model = build_model("dnn", task, SPEC, {"width": 8, "depth": 2}, num_classes=classes)
    assert model.name == f"dnn_{task}"
    assert sorted(model.input_names) == ["a_xf", "b_xf", "c_xf"]
    before = [w.copy() for w in model.get_weights()]
    model.fit(_batch(), labels, epochs=1, batch_size=16, verbose=0)
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights()))
    predictions = model.predict(_batch(), verbose=0)
    assert predictions.shape == (16, width)
    if task == "multiclass":
        np.testing.assert_allclose(predictions.sum(axis=1), 1.0, atol=1e-5)


def test_hparams_shape_the_learner():
    model = build_model("dnn", "binary", SPEC, {"width": 32, "depth": 3, "taper": 1.0, "batch_norm": True})
    dense = [layer for layer in model.layers if layer.name.startswith("dense_")]
    assert [layer.units for layer in dense] == [32, 32, 32]
    assert any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)


def test_unsupported_pair_is_a_clear_error():
    with pytest.raises(UnsupportedModelError, match="family 'dnn' does not support task 'anomaly'"):
        build_model("dnn", "anomaly", SPEC, {})
