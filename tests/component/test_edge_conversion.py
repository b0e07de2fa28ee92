"""The edge function is saved once, on its own, and every TF Lite variant is converted from that
SavedModel (components.edge_export.save_edge_function / convert)."""
import numpy as np
import tensorflow as tf
import tf_keras as keras

from components.edge_export import convert, save_edge_function
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
