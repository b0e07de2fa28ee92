"""Every family with each task it supports: build, output shape, one training step, save and load."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from components.models import autoencoder
from components.models.base import EMBEDDING, FeatureSpec, HeadSpec
from components.models.builder import build_model
from components.models.families import FAMILIES, TRANSFER_FAMILY, UnsupportedModelError

N = 16
TABULAR = FeatureSpec(numeric=("a_xf", "b_xf"), categorical={"c_xf": 4})
IMAGE = FeatureSpec(tensors={"pixels_xf": (8, 8, 1)})
SEQUENCE = FeatureSpec(tensors={"window_xf": (12, 1)})
INPUTS = {"dnn": TABULAR, "cnn": IMAGE, "vgg": IMAGE, "resnet": IMAGE, "mobilenet": IMAGE,
          "rnn": SEQUENCE, "seq2seq": SEQUENCE, "autoencoder": TABULAR}
SMALL = {"vgg": {"width": 0.0625, "top_units": 16}, "resnet": {"width": 0.125},
         "mobilenet": {"alpha": 0.35, "last_filters": 64, "groups": 3}, "cnn": {"filters": 8}}
HEADS = {
    "binary": HeadSpec("binary"), "multiclass": HeadSpec("multiclass", units=3),
    "regression": HeadSpec("regression"), "multilabel": HeadSpec("multilabel", units=3),
    "forecast": HeadSpec("forecast", units=4), "anomaly": HeadSpec("anomaly"),
    "multitask": HeadSpec("multitask", subheads=(("age", "multiclass", 3), ("gender", "binary", 1)),
                          loss_weights={"age": 1.0, "gender": 0.5}),
}
OUTPUT_WIDTH = {"binary": 1, "multiclass": 3, "regression": 1, "multilabel": 3, "forecast": 4}


def _features(spec: FeatureSpec, rng) -> dict:
    x = {name: rng.normal(size=(N, 1)).astype("float32") for name in spec.numeric}
    x.update({name: rng.integers(0, size, size=(N, 1)) for name, size in spec.categorical.items()})
    x.update({name: rng.normal(size=(N, *shape)).astype("float32") for name, shape in spec.tensors.items()})
    return x


def _labels(head: HeadSpec, rng):
    if head.task == "multitask":
        return {"age": rng.integers(0, 3, size=N), "gender": rng.integers(0, 2, size=N)}
    if head.task in ("binary", "anomaly"):
        return rng.integers(0, 2, size=N)
    if head.task == "multiclass":
        return rng.integers(0, 3, size=N)
    if head.task == "multilabel":
        return rng.integers(0, 2, size=(N, 3)).astype("float32")
    if head.task == "forecast":
        return rng.normal(size=(N, 4)).astype("float32")
    return rng.normal(size=N).astype("float32")


# `transfer` needs a pretrained base (tests/unit/test_transfer_and_distillation.py, tests/e2e/test_transfer.py)
CASES = [(family, task) for family, spec in FAMILIES.items() for task in spec.tasks if family != TRANSFER_FAMILY]
# Saved and reloaded: every head on the light dnn, and each family once (its last task, multitask for
# most; the pipeline tests save the rest). Saving traces every layer: MobileNet took ~25 s per task.
SAVED = {(family, task) for family, task in CASES if family == "dnn"} | \
    {(family, FAMILIES[family].tasks[-1]) for family, _ in CASES}


@pytest.mark.parametrize("family, task", CASES, ids=[f"{f}-{t}" for f, t in CASES])
def test_family_task_builds_fits_saves_and_loads(tmp_path, family, task):
    """The training step runs eagerly (graph tracing of a deep model costs more than the step on 16
    rows, and the pipeline tests train in graph mode); the pairs in SAVED are saved and reloaded."""
    rng = np.random.default_rng(0)
    head, spec = HEADS[task], INPUTS[family]
    model = build_model(family, head, spec, SMALL.get(family, {}))
    assert model.count_params() > 0
    model.run_eagerly = True
    x, y = _features(spec, rng), _labels(head, rng)
    before = [w.numpy().copy() for w in model.trainable_weights]
    model.fit(x, None if task == "anomaly" else y, epochs=1, batch_size=N, verbose=0)
    assert any(not np.allclose(a, b.numpy()) for a, b in zip(before, model.trainable_weights))
    predictions = model.predict(x, verbose=0)
    if task == "multitask":
        assert predictions["age"].shape == (N, 3) and predictions["gender"].shape == (N, 1)
    elif task == "anomaly":
        assert predictions[autoencoder.SCORE].shape == (N, 1)
        assert set(np.unique(predictions[autoencoder.VERDICT])) <= {0.0, 1.0}
    else:
        assert predictions.shape == (N, OUTPUT_WIDTH[task])
    if task != "anomaly" and family != "seq2seq":
        assert model.get_layer(EMBEDDING) is not None  # the named endpoint for reuse
    if (family, task) not in SAVED:
        return
    model.save(tmp_path / "model", save_format="tf")
    loaded = tf.saved_model.load(str(tmp_path / "model"))
    reloaded = loaded({k: tf.constant(v) for k, v in x.items()}, training=False)
    flat = tf.nest.flatten(predictions)
    np.testing.assert_allclose(np.concatenate([np.reshape(p, (N, -1)) for p in flat], axis=1),
                               np.concatenate([np.reshape(p.numpy(), (N, -1)) for p in tf.nest.flatten(reloaded)],
                                              axis=1), atol=1e-5)


def test_hparams_shape_the_learner():
    model = build_model("dnn", HeadSpec("binary"), TABULAR, {"width": 32, "depth": 3, "taper": 1.0, "batch_norm": True})
    dense = [layer for layer in model.layers if layer.name.endswith("_dense")]
    assert [layer.units for layer in dense] == [32, 32, 32]
    assert any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)


def test_tables_and_width_scale_parameter_counts():
    def params(family, **hp):
        return build_model(family, HEADS["multiclass"], IMAGE, hp).count_params()

    assert params("resnet", depth=50, width=0.125) > params("resnet", depth=34, width=0.125) \
        > params("resnet", depth=18, width=0.125)
    assert params("resnet", depth=18, width=0.25) > 3 * params("resnet", depth=18, width=0.125)
    assert params("vgg", depth=19, width=0.0625, top_units=16) > params("vgg", depth=11, width=0.0625, top_units=16)
    assert params("mobilenet", alpha=1.0, last_filters=64) > params("mobilenet", alpha=0.35, last_filters=64)
    assert params("resnet", depth=18, width=0.125, version=1) != params("resnet", depth=18, width=0.125, version=2)


def test_stems_adapt_to_the_input_size():
    small = build_model("resnet", HEADS["multiclass"], IMAGE, {"width": 0.125})
    assert small.get_layer("stem_conv").kernel_size == (3, 3) and small.get_layer("stem_conv").strides == (1, 1)
    large = build_model("resnet", HEADS["multiclass"], FeatureSpec(tensors={"img": (96, 96, 3)}), {"width": 0.125})
    assert large.get_layer("stem_conv").kernel_size == (7, 7)
    assert large.get_layer("stem_pool") is not None


def test_unsupported_pairs_and_inputs_are_clear_errors():
    with pytest.raises(UnsupportedModelError, match="family 'seq2seq' does not support task 'binary'; supported: "):
        build_model("seq2seq", HEADS["binary"], SEQUENCE, {})
    with pytest.raises(ValueError, match=r"family 'cnn' needs exactly one image \[H, W, C\] input"):
        build_model("cnn", HEADS["binary"], TABULAR, {})
    with pytest.raises(ValueError, match="resnet depth 20: choose one of"):
        build_model("resnet", HEADS["binary"], IMAGE, {"depth": 20})


def test_anomaly_threshold_is_chosen_on_eval_data_and_saved(tmp_path):
    scores = np.array([0.1, 0.2, 0.15, 0.3, 2.0, 3.0])
    labels = np.array([0, 0, 0, 0, 1, 1])
    assert 0.3 <= autoencoder.choose_threshold(scores, labels) < 2.0
    assert autoencoder.choose_threshold(scores, None, quantile=0.5) == pytest.approx(np.median(scores))
    model = build_model("autoencoder", HEADS["anomaly"], TABULAR, {})
    autoencoder.set_threshold(model, 0.42)
    model.save(tmp_path / "ae", save_format="tf")
    restored = keras.models.load_model(tmp_path / "ae", custom_objects={"AnomalyScore": autoencoder.AnomalyScore})
    assert float(restored.get_layer("anomaly").threshold.numpy()) == pytest.approx(0.42)
