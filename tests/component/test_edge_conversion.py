"""The edge function is saved once, on its own, and every TF Lite variant is converted from that
SavedModel (components.edge_conversion.save_edge_function / convert)."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from components.edge_conversion import convert, save_edge_function
from serving.edge_runtime import SIGNATURE, EdgeModel


def _saved_and_loaded(tmp_path):
    inputs = keras.Input(shape=(3,), name="x")
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Dense(4, activation="relu")(inputs)))
    model.save(str(tmp_path / "model"), save_format="tf")
    return tf.saved_model.load(str(tmp_path / "model"))


def _rows(n=16):
    return np.random.default_rng(0).normal(size=(n, 3)).astype(np.float32)


def test_the_function_is_saved_with_its_variables_only_and_every_variant_converts(tmp_path):
    loaded = _saved_and_loaded(tmp_path)

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def edge(x):
        return {"predictions": loaded(x, training=False) * 2.0}

    concrete = edge.get_concrete_function()
    save_edge_function(concrete, loaded, tmp_path / "edge")
    saved = tf.saved_model.load(str(tmp_path / "edge"))
    assert list(saved.signatures) == [SIGNATURE] and not hasattr(saved, "keras_api")  # not the whole Keras model
    rows = _rows()
    expected = concrete(tf.constant(rows))["predictions"].numpy()
    np.testing.assert_allclose(saved.signatures[SIGNATURE](x=tf.constant(rows))["predictions"].numpy(), expected,
                               rtol=1e-6)

    def representative():
        for row in rows:
            yield {"x": row[None, :]}

    for variant, atol in (("float32", 1e-5), ("float16", 1e-2), ("dynamic_range", 0.1), ("int8", 0.3)):
        flatbuffer, _ = convert(tmp_path / "edge", variant, representative)
        (tmp_path / f"{variant}.tflite").write_bytes(flatbuffer)
        out = EdgeModel(tmp_path / f"{variant}.tflite").predict({"x": rows})["predictions"]
        np.testing.assert_allclose(out, expected, atol=atol, err_msg=variant)


def test_a_function_reading_a_lookup_table_is_saved_with_the_whole_model(tmp_path):
    """A resource beside the variables (a lookup layer's table inside the model) is not lost: the
    model is saved whole with the function."""
    x, code = keras.Input(shape=(3,), name="x"), keras.Input(shape=(1,), name="code", dtype="int64")
    looked_up = keras.layers.IntegerLookup(vocabulary=[1, 2], output_mode="one_hot")(code)
    outputs = keras.layers.Dense(2)(keras.layers.Concatenate()([x, looked_up]))
    keras.Model([x, code], outputs).save(str(tmp_path / "model"), save_format="tf")
    loaded = tf.saved_model.load(str(tmp_path / "model"))

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x"),
                                  tf.TensorSpec([None, 1], tf.int64, name="code")])
    def edge(x, code):
        return {"predictions": loaded([x, code], training=False)}

    concrete = edge.get_concrete_function()
    save_edge_function(concrete, loaded, tmp_path / "edge")
    saved = tf.saved_model.load(str(tmp_path / "edge"))
    rows, codes = tf.constant(_rows(4)), tf.constant([[1], [2], [3], [1]], tf.int64)
    np.testing.assert_allclose(saved.signatures[SIGNATURE](x=rows, code=codes)["predictions"].numpy(),
                               concrete(rows, codes)["predictions"].numpy(), rtol=1e-6)


def test_a_model_saved_as_the_trainer_saves_it_gives_a_minimal_edge_model(tmp_path):
    """The Trainer saves without Keras' traces (components.export.save_model): the loaded object has
    no variable list, so the edge function's own captured variables are what is saved with it."""
    from components.export import CALL_TRANSFORMED, save_model

    inputs = keras.Input(shape=(3,), name="x")
    model = keras.Model({"x": inputs}, keras.layers.Dense(2)(keras.layers.Dense(4, activation="relu")(inputs)))
    save_model(model, str(tmp_path / "model"), signatures={})
    loaded = tf.saved_model.load(str(tmp_path / "model"))
    assert not hasattr(loaded, "variables")

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def edge(x):
        return {"predictions": getattr(loaded, CALL_TRANSFORMED)({"x": x})}

    concrete = edge.get_concrete_function()
    save_edge_function(concrete, loaded, tmp_path / "edge")
    saved = tf.saved_model.load(str(tmp_path / "edge"))
    assert not hasattr(saved, "keras_api") and not hasattr(saved, CALL_TRANSFORMED)  # the function alone
    rows = tf.constant(_rows())
    np.testing.assert_allclose(saved.signatures[SIGNATURE](x=rows)["predictions"].numpy(),
                               model({"x": rows}).numpy(), rtol=1e-6)


def _z_scores(values, mean, std):
    """What TFT's scale_to_z_score gives, in float32 as the Transform graph computes it."""
    x = np.asarray(values, np.float32)
    return (x - np.float32(mean)) / np.float32(std)


def test_the_affine_map_of_a_billion_scale_column_is_read_without_float32_rounding():
    """Probed from 0 with a step of 1, a column of ~3e9 (std 4e8) moved its float32 z-score by less
    than its rounding: refused as "not affine". The step grows until the output moves."""
    from components.edge_folding import PROBE_VALUES, affine_map

    scale, offset = affine_map("volume", _z_scores(PROBE_VALUES, 3.1e9, 4.2e8))
    assert abs(scale * 4.2e8 - 1) < 1e-6 and abs(offset + 3.1e9 / 4.2e8) < 1e-5
    scale, offset = affine_map("rate", _z_scores(PROBE_VALUES, 0.031, 0.0042))
    assert abs(scale * 0.0042 - 1) < 1e-6


def test_a_map_that_is_not_affine_is_refused_with_the_feature_named():
    from components.edge_folding import PROBE_VALUES, EdgeExportError, affine_map

    logs = np.log1p(np.asarray(PROBE_VALUES, np.float32))
    with pytest.raises(EdgeExportError, match="feature 'rooms': the Transform is not an affine map"):
        affine_map("rooms", logs)
    with pytest.raises(EdgeExportError, match="feature 'empty'"):
        affine_map("empty", np.full(len(PROBE_VALUES), np.nan))


def test_an_export_that_fails_leaves_every_variant_out_and_nothing_half_written(tmp_path):
    from components.edge_export import VARIANTS, EdgeExportError, left_out
    from serving.edge_runtime import SIDECAR

    (tmp_path / "float32.tflite").write_bytes(b"half")
    (tmp_path / SIDECAR).write_text("{}")
    report = left_out(tmp_path, RuntimeError("converter crashed\nat line 3"))
    assert report["error"] == "the export failed: RuntimeError: converter crashed"
    assert {v: e["reason"] for v, e in report["variants"].items()} == {v: report["error"] for v in VARIANTS}
    assert not any(e["accepted"] for e in report["variants"].values()) and list(tmp_path.iterdir()) == []
    assert left_out(tmp_path, EdgeExportError("feature 'x': not affine"))["error"] == "feature 'x': not affine"


def test_a_forecasters_first_date_reaches_the_edge_model_as_a_day_number():
    """TF Lite's builtins parse no strings: the host gives next_date as days since 1970-01-01."""
    from serving.edge_runtime import EdgeInputError, rows_to_inputs

    sidecar = {"inputs": [{"name": "window", "kind": "tensor", "dtype": "float32", "shape": [3]},
                          {"name": "next_date", "kind": "day", "dtype": "float32", "shape": []}]}
    inputs = rows_to_inputs(sidecar, [{"window": [1, 2, 3], "next_date": "1970-01-02"},
                                      {"window": [4, 5, 6], "next_date": "2024-01-22"}])
    assert inputs["next_date"].tolist() == [1.0, 19744.0] and inputs["window"].shape == (2, 3)
    with pytest.raises(EdgeInputError, match=r"^rows: row 1, 'next_date': '22/01/2024' is not a YYYY-MM-DD date$"):
        rows_to_inputs(sidecar, [{"window": [1, 2, 3], "next_date": "22/01/2024"}])
