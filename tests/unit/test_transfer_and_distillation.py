"""Transfer learning and distillation without a pipeline: a Keras application from a weights file the
test writes (these machines cannot download), the frozen phase leaves the base as it was, the second
phase unfreezes the top layers but not BatchNorm, each base gets the pixels it was trained on, and
the distiller trains the student only."""
import numpy as np
import pytest
import tf_keras as keras

from components.models import distillation, transfer
from components.models.base import FeatureSpec, HeadSpec

SPEC = FeatureSpec(tensors={"image_xf": (32, 32, 3)})
HEAD = HeadSpec("multiclass", units=3)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "mobilenet_v2.h5"
    keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3),
                                   pooling="avg").save_weights(str(path))
    return path


def _data(rows=16, seed=0):
    rng = np.random.default_rng(seed)
    return {"image_xf": rng.uniform(0, 1, (rows, 32, 32, 3)).astype(np.float32)}, rng.integers(0, 3, rows)


def test_the_head_phase_leaves_the_base_alone_and_fine_tuning_spares_batchnorm(weights):
    model, base = transfer.build_model(SPEC, HEAD, {"epochs": 1, "learning_rate": 0.01},
                                       {"source": "keras:mobilenet_v2", "weights": str(weights)}, ())
    reference = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3),
                                               pooling="avg")
    reference.load_weights(str(weights))
    assert transfer.weights_digest(base) == transfer.weights_digest(reference)  # the file's weights, loaded
    head_before = [w.numpy().copy() for w in model.get_layer("predictions").weights]
    x, y = _data()
    before = transfer.weights_digest(base)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert transfer.weights_digest(base) == before
    assert any(not np.array_equal(a, b.numpy()) for a, b in zip(head_before, model.get_layer("predictions").weights))
    unfrozen = transfer.unfreeze_top(model, base, 12, HEAD, 1e-4)
    trainable = [layer for layer in base.layers if layer.trainable and layer.weights]
    assert unfrozen == len(trainable) and 0 < unfrozen <= 12
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in trainable)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert transfer.weights_digest(base) != before


def test_a_missing_or_wrong_weights_file_is_one_line(tmp_path, weights):
    with pytest.raises(transfer.WeightsError, match="no such weights file"):
        transfer.application("mobilenet_v2", 32, str(tmp_path / "none.h5"))
    with pytest.raises(transfer.WeightsError, match="not weights of keras:resnet50"):
        transfer.application("resnet50", 32, str(weights))


def test_each_base_gets_the_pixels_it_was_trained_on():
    """The Transform gives pixels / 255: MobileNetV2 wants [-1, 1], ResNet50 BGR minus ImageNet's
    means (caffe), EfficientNet 0-255 (it rescales itself)."""
    pixels = np.array([[[[10.0, 120.0, 250.0]]]], np.float32)
    inputs = keras.Input((1, 1, 3))
    for name, expected in (("mobilenet_v2", pixels / 127.5 - 1.0),
                           ("resnet50", pixels[..., ::-1] - np.array([103.939, 116.779, 123.68], np.float32)),
                           ("efficientnet_b0", pixels)):
        out = keras.Model(inputs, transfer._preprocess(inputs, name))(pixels / 255.0).numpy()
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-4)


def test_the_distiller_trains_the_student_on_softened_teacher_outputs():
    inputs = keras.Input((4,), name="x")
    teacher = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
    student_in = keras.Input((4,), name="x")
    student = keras.Model(student_in, keras.layers.Dense(3, activation="softmax", name="predictions")(student_in))
    model = distillation.distiller(student, teacher, {"temperature": 4.0, "distill_alpha": 0.1, "learning_rate": 0.05},
                                   "multiclass")
    rng = np.random.default_rng(1)
    x, y = {"x": rng.normal(size=(64, 4)).astype(np.float32)}, rng.integers(0, 3, 64)
    teacher_before, student_before = transfer.weights_digest(teacher), transfer.weights_digest(student)
    history = model.fit(x, y, epochs=3, batch_size=16, verbose=0, validation_data=(x, y))
    assert transfer.weights_digest(teacher) == teacher_before and transfer.weights_digest(student) != student_before
    assert {"loss", "student_loss", "distillation_loss", "val_loss", "val_sparse_categorical_accuracy"} <= set(
        history.history)
    # the softened distributions: T = 1 is the distribution itself, a large T flattens it
    p = np.array([[0.7, 0.2, 0.1]], np.float32)
    np.testing.assert_allclose(distillation.softened(p, 1.0).numpy(), p, rtol=1e-5)
    assert np.ptp(distillation.softened(p, 8.0).numpy()) < np.ptp(p)


def test_the_distillers_validation_loss_is_the_students_mean_over_the_whole_set():
    """Early stopping restores the epoch of the lowest val_loss: it must be the evaluation set's mean
    (batches weighted by rows), not the last batch's loss."""
    inputs = keras.Input((4,), name="x")
    teacher = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
    student_in = keras.Input((4,), name="x")
    student = keras.Model(student_in, keras.layers.Dense(3, activation="softmax")(student_in))
    model = distillation.distiller(student, teacher, {"temperature": 2.0, "distill_alpha": 0.5, "learning_rate": 0.01},
                                   "multiclass")
    rng = np.random.default_rng(2)
    x, y = {"x": rng.normal(size=(40, 4)).astype(np.float32)}, rng.integers(0, 3, 40)
    x["x"][32:] *= 50.0  # the last, short batch (8 of 40 rows) is far off: its loss alone would differ
    per_row = keras.losses.sparse_categorical_crossentropy(y, student(x["x"])).numpy()
    results = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    np.testing.assert_allclose(results["loss"], per_row.mean(), rtol=1e-4)
    assert not np.isclose(results["loss"], per_row[32:].mean(), rtol=1e-2)
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0, validation_data=(x, y))
    assert history.history["val_loss"][-1] == pytest.approx(
        keras.losses.sparse_categorical_crossentropy(y, student(x["x"])).numpy().mean(), rel=1e-4)


def test_a_teacher_with_other_inputs_is_named():
    teacher_in = keras.Input((4,), name="age_xf")
    teacher = keras.Model(teacher_in, keras.layers.Dense(2, activation="softmax")(teacher_in))
    student_in = keras.Input((4,), name="x")
    student = keras.Model(student_in, keras.layers.Dense(2, activation="softmax")(student_in))
    with pytest.raises(ValueError, match="the teacher takes age_xf"):
        distillation.distiller(student, teacher, {"temperature": 2.0, "distill_alpha": 0.5, "learning_rate": 0.01},
                               "multiclass")
