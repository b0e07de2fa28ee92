"""The text stem's learners build, train and predict beside numeric inputs, and padding is masked:
ids past a text's words do not change what the pooled learner sees, and a text with no words
(all padding) trains and predicts finite numbers."""
import numpy as np
import pytest


@pytest.mark.parametrize("learner", ["tfidf", "pool", "conv", "lstm"])
def test_each_text_learner_trains_beside_numbers(learner):
    from components.models.base import FeatureSpec, HeadSpec
    from components.models.builder import build_model

    spec = FeatureSpec(numeric=("x_xf",), texts={"review_xf": (12, 40)},
                       text_weights={"review_xf": "review__tfidf_xf"})
    model = build_model("dnn", HeadSpec("binary"), spec, {"text_learner": learner, "text_dim": 8, "epochs": 1})
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 40, (64, 12))
    ids[:, 8:] = 0  # padding after 8 words
    ids[::5] = 0  # a fifth of the rows have no words (an empty cell, or only emoji)
    y = (ids[:, 0] % 2).astype("float32")
    x = {"x_xf": rng.normal(size=(64, 1)).astype("float32"), "review_xf": ids,
         "review__tfidf_xf": (ids > 0) / np.maximum(np.sqrt((ids > 0).sum(1, keepdims=True)), 1)}
    history = model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert np.isfinite(history.history["loss"]).all(), history.history
    predictions = model.predict(x, verbose=0)
    assert predictions.shape == (64, 1) and np.isfinite(predictions).all()
    assert any(layer.name == "embed_review_xf" for layer in model.layers)


def test_pooling_ignores_padding_and_an_unknown_learner_is_named():
    import tf_keras as keras

    from components.models.base import FeatureSpec, HeadSpec
    from components.models.builder import build_model

    spec = FeatureSpec(texts={"t_xf": (6, 20)})
    model = build_model("dnn", HeadSpec("binary"), spec, {"depth": 0, "text_learner": "pool"})
    pooled = keras.Model(model.inputs, model.get_layer("pool_t_xf").output)
    vectors = model.get_layer("embed_t_xf").get_weights()[0]
    got = pooled.predict({"t_xf": np.array([[3, 4, 0, 0, 0, 0]])}, verbose=0)[0]
    np.testing.assert_allclose(got, (vectors[3] + vectors[4]) / 2, rtol=1e-5)  # the four paddings count for nothing
    assert not pooled.predict({"t_xf": np.zeros([1, 6], "int64")}, verbose=0).any()  # no words: zeros, not NaN
    with pytest.raises(ValueError, match="text_learner='bag': choose one of tfidf, pool, conv, lstm"):
        build_model("dnn", HeadSpec("binary"), spec, {"text_learner": "bag"})
    with pytest.raises(ValueError, match="no TF-IDF weights"):
        build_model("dnn", HeadSpec("binary"), spec, {"text_learner": "tfidf"})


def test_the_tfidf_learner_sums_the_word_vectors_by_their_weights():
    import tf_keras as keras

    from components.models.base import FeatureSpec, HeadSpec
    from components.models.builder import build_model

    spec = FeatureSpec(texts={"t_xf": (4, 20)}, text_weights={"t_xf": "t__tfidf_xf"})
    model = build_model("dnn", HeadSpec("binary"), spec, {"depth": 0})
    summed = keras.Model(model.inputs, model.get_layer("tfidf_t_xf").output)
    vectors = model.get_layer("embed_t_xf").get_weights()[0]
    x = {"t_xf": np.array([[3, 5, 3, 0], [0, 0, 0, 0]]), "t__tfidf_xf": np.array([[0.3, 0.8, 0.3, 0], [0, 0, 0, 0]])}
    got = summed.predict(x, verbose=0)
    np.testing.assert_allclose(got[0], 0.6 * vectors[3] + 0.8 * vectors[5], rtol=1e-5)
    assert not got[1].any()  # no words: zeros


def test_a_saved_text_model_reloads_in_keras(tmp_path):
    """Warm starts, transfer and distillation reload the Trainer's model in Keras: the masked mean
    is rebuilt by its registered name."""
    import tf_keras as keras

    from components.models.base import FeatureSpec, HeadSpec
    from components.models.builder import build_model

    spec = FeatureSpec(texts={"t_xf": (6, 20)}, text_weights={"t_xf": "t__tfidf_xf"})
    model = build_model("dnn", HeadSpec("binary"), spec, {"depth": 0})
    x = {"t_xf": np.array([[3, 4, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]]),
         "t__tfidf_xf": np.array([[0.6, 0.8, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]], "float32")}
    model.save(str(tmp_path / "model"), save_traces=False)
    reloaded = keras.models.load_model(str(tmp_path / "model"), compile=False)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


@pytest.mark.parametrize("task, units", [("binary", 1), ("multiclass", 4), ("regression", 1)])
def test_the_linear_rival_weighs_each_word_once_per_output(task, units):
    """The rival at depth 0 is TF-IDF + logistic (or ridge) regression itself: each word gets one
    weight per output, not the dnn's factorized word vectors; a table without text is unchanged."""
    from components.models.base import FeatureSpec, HeadSpec
    from components.models.builder import build_model
    from components.trainer import linear_rival_hparams

    head = HeadSpec(task, units)
    spec = FeatureSpec(numeric=("x_xf",), texts={"t_xf": (4, 20)}, text_weights={"t_xf": "t__tfidf_xf"})
    hp = linear_rival_hparams({"depth": 2, "text_dim": 32}, spec, head)
    assert hp == {"depth": 0, "text_dim": units}
    model = build_model("dnn", head, spec, hp)
    assert model.get_layer("embed_t_xf").get_weights()[0].shape == (20, units)
    assert linear_rival_hparams({"depth": 2, "text_dim": 32}, FeatureSpec(numeric=("x_xf",)), head) == {
        "depth": 0, "text_dim": 32}
