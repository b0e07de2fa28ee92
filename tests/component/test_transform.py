"""preprocessing_fn through TFT's Beam implementation on tiny data, missing values included."""
import functools

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from components import transform
from components.features import FEATURE_VOCABULARY, feature_vocabularies
from components.transform import preprocessing_fn

RAW_SPEC = {
    "amount": tf.io.FixedLenFeature([1], tf.float32),
    "age": tf.io.VarLenFeature(tf.float32),  # has missing values
    "segment": tf.io.VarLenFeature(tf.string),  # has missing values
    "label": tf.io.FixedLenFeature([1], tf.int64),
    "kind": tf.io.FixedLenFeature([1], tf.string),
}
ROWS = [
    {"amount": [10.0], "age": [1.0], "segment": [b"a"], "label": [0], "kind": [b"cat"]},
    {"amount": [20.0], "age": [], "segment": [b"b"], "label": [1], "kind": [b"dog"]},
    {"amount": [30.0], "age": [3.0], "segment": [], "label": [1], "kind": [b"dog"]},
    {"amount": [40.0], "age": [5.0], "segment": [b"a"], "label": [0], "kind": [b"dog"]},
]


def _transform(tmp_path, label: str, task: str, drop: str):
    spec = {k: v for k, v in RAW_SPEC.items() if k != drop}
    rows = [{k: v for k, v in row.items() if k != drop} for row in ROWS]
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
    fn = functools.partial(preprocessing_fn, custom_config={"task": task, "targets": [[label, task]]})
    with tft_beam.Context(temp_dir=str(tmp_path), force_tf_compat_v1=False):
        (transformed, _), transform_fn = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(
            fn, output_record_batches=False)
    return transformed


def _column(rows, name):
    return np.array([np.asarray(r[name]).reshape(-1)[0] for r in rows])


def test_numeric_zscore_with_missing_filled_by_mean(tmp_path):
    rows = _transform(tmp_path, "label", "binary", drop="kind")
    amount = _column(rows, "amount_xf")
    assert amount.mean() == pytest.approx(0, abs=1e-6) and amount.std() == pytest.approx(1, abs=1e-5)
    age = _column(rows, "age_xf")
    present = np.array([1.0, 3.0, 5.0])
    expected = (present - present.mean()) / present.std()
    np.testing.assert_allclose(age[[0, 2, 3]], expected, atol=1e-5)
    assert age[1] == 0.0  # missing -> the mean, i.e. z = 0


def test_strings_get_vocabulary_ids_and_missing_is_a_token(tmp_path):
    rows = _transform(tmp_path, "label", "binary", drop="kind")
    segment = _column(rows, "segment_xf")
    assert segment.dtype == np.int64
    assert segment[0] == segment[3]  # both "a"
    assert len(set(segment.tolist())) == 3  # a, b and the empty (missing) value
    assert _column(rows, "label_xf").tolist() == [0, 1, 1, 0]  # 0/1 kept as is


def test_multiclass_label_is_a_class_index_by_frequency(tmp_path):
    rows = _transform(tmp_path, "kind", "multiclass", drop="label")
    assert _column(rows, "kind_xf").tolist() == [1, 0, 0, 0]  # dog (most frequent) = 0
    assert "kind" not in rows[0] and "amount_xf" in rows[0]


def test_regression_label_is_a_float(tmp_path):
    rows = _transform(tmp_path, "amount", "regression", drop="kind")
    assert _column(rows, "amount_xf").tolist() == [10.0, 20.0, 30.0, 40.0]
    assert _column(rows, "label_xf").dtype == np.float32


def _analyze_and_write(tmp_path, spec, rows, fn):
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
    with tft_beam.Context(temp_dir=str(tmp_path / "tmp"), force_tf_compat_v1=False):
        (transformed, _), transform_fn = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(
            fn, output_record_batches=False)
        _ = transform_fn | tft_beam.WriteTransformFn(str(tmp_path / "out"))
    return transformed, tft.TFTransformOutput(str(tmp_path / "out"))


def test_text_columns_share_one_vocabulary_with_ids_of_their_own(tmp_path, monkeypatch):
    """One analyzer for all text columns, yet each column's ids are its own values by decreasing
    frequency, capped at the top k per column, with "" (missing) and unseen values the OOV id; the
    saved graph answers the same after its directory moves (the tables are constants in it)."""
    monkeypatch.setattr(transform, "VOCABULARY_TOP_K", 2)
    spec = {"colour": tf.io.VarLenFeature(tf.string), "size": tf.io.FixedLenFeature([1], tf.string),
            "label": tf.io.FixedLenFeature([1], tf.int64)}
    values = [("red", "a"), ("red", "a"), ("red", "b"), ("blue", "b"), ("blue", "red"), ("green", "b"), (None, "c")]
    rows = [{"colour": [c.encode()] if c else [], "size": [s.encode()], "label": [i % 2]}
            for i, (c, s) in enumerate(values)]
    fn = functools.partial(preprocessing_fn, custom_config={"task": "binary", "targets": [["label", "binary"]]})
    transformed, output = _analyze_and_write(tmp_path, spec, rows, fn)
    assert _column(transformed, "colour_xf").tolist() == [0, 0, 0, 1, 1, 2, 2]  # green: past the top 2; None: ""
    assert _column(transformed, "size_xf").tolist() == [1, 1, 0, 0, 2, 0, 2]  # b (3) before a (2); "red" and c: OOV
    vocabularies = feature_vocabularies(output)
    assert vocabularies == {"colour": [b"red", b"blue"], "size": [b"b", b"a"]}
    assert output.vocabulary_by_name(FEATURE_VOCABULARY)  # one file for both columns
    moved = tmp_path / "moved"
    (tmp_path / "out").rename(moved)
    served = tft.TFTransformOutput(str(moved)).transform_raw_features(
        {"colour": tf.sparse.from_dense(tf.constant([["blue"], ["purple"]])),
         "size": tf.constant([["a"], ["blue"]]), "label": tf.constant([[0], [1]], tf.int64)})
    assert served["colour_xf"].numpy().ravel().tolist() == [1, 2]
    assert served["size_xf"].numpy().ravel().tolist() == [1, 2]


def test_word_pairs_are_tokens_of_the_text_vocabulary_after_the_words(tmp_path):
    """--text-ngrams 2: a text's first ``length`` words, then the pairs of those words, in one vocabulary
    (pairs seen once fall under the frequency cut like words), then padding; an empty text is all padding."""
    from components.text_features import PADDING, text_ids, text_vocabulary, token_window

    spec = {"t": tf.io.FixedLenFeature([1], tf.string)}
    texts = ["New York city", "new york", "New-York", "york city hall", "", "new york city!"]
    rows = [{"t": [t.encode()]} for t in texts]
    transformed, output = _analyze_and_write(tmp_path, spec, rows,
                                             lambda inputs: {"t": text_ids(inputs["t"], "t", 3, 2)[0]})
    assert token_window(3, 2) == 5 and token_window(1, 3) == 1
    words = [w.decode() for w in output.vocabulary_by_name(text_vocabulary("t"))]
    assert {"new", "york", "city", "new york", "york city"} <= set(words) and "city hall" not in words  # seen once
    ids = {w: i + 1 for i, w in enumerate(words)}
    got = np.array([np.asarray(r["t"]).reshape(-1) for r in transformed])
    new, york, city, pair, pair2 = (ids[w] for w in ("new", "york", "city", "new york", "york city"))
    assert got[0].tolist() == [new, york, city, pair, pair2]  # the words, then their pairs
    assert got[3][:3].tolist() == [york, city, len(words) + 1] and got[3][3] == pair2  # hall: past the cut
    assert got[4].tolist() == [PADDING] * 5
    served = output.transform_raw_features({"t": tf.constant([["new york"]])})["t"].numpy()
    assert served.tolist() == [[new, york, pair, PADDING, PADDING]]  # packed: a bag of tokens, then padding


def test_a_text_learner_that_reads_no_weights_gets_word_ids_alone(tmp_path):
    """pool, conv and lstm never read TF-IDF weights: the Transform (so the served graph) leaves them
    out, and the column's ids are the tfidf learner's."""
    from components.specs import ColumnSpec
    from components.transform import free_text

    spec = {"t": tf.io.FixedLenFeature([1], tf.string)}
    rows = [{"t": [t.encode()]} for t in ("red fox", "red dog", "fox dog", "")]
    outputs = {}
    for tfidf in (True, False):
        column = ColumnSpec("text", length=3, tfidf=tfidf)
        transformed, output = _analyze_and_write(tmp_path / str(tfidf), spec, rows,
                                                 lambda inputs, c=column: free_text(inputs["t"], "t", c, ("NA",)))
        outputs[tfidf] = (set(output.transformed_feature_spec()), [list(np.ravel(r["t_xf"])) for r in transformed])
    assert outputs[True][0] == {"t_xf", "t__tfidf_xf"} and outputs[False][0] == {"t_xf"}
    assert outputs[True][1] == outputs[False][1]


def test_text_weights_are_scikit_learns_tfidf_of_the_training_texts(tmp_path):
    """Summed over a term's repeats, each position's weight is TfidfVectorizer's value (sublinear tf,
    smoothed idf, L2 rows, words seen once left out) fitted on the training texts; served texts keep
    the training idf; unknown words and a text with no words weigh nothing; a NUL is a separator."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from components.text_features import text_ids, text_vocabulary

    spec = {"t": tf.io.FixedLenFeature([1], tf.string)}
    texts = ["red red red fox", "red dog", "quick fox dog dog", "quick quick red zebra", "", "fox dog red quick"]
    transformed, output = _analyze_and_write(
        tmp_path, spec, [{"t": [t.encode()]} for t in texts],
        lambda inputs: dict(zip(("ids", "weights"), text_ids(inputs["t"], "t", 6))))
    vectorizer = TfidfVectorizer(analyzer=str.split, sublinear_tf=True, min_df=2)
    expected = vectorizer.fit_transform(texts).toarray()
    words = [w.decode() for w in output.vocabulary_by_name(text_vocabulary("t"))]
    assert "zebra" not in words

    def summed(ids, weights):
        by_word = dict.fromkeys(vectorizer.get_feature_names_out(), 0.0)
        for i, w in zip(np.ravel(ids), np.ravel(weights)):
            if 0 < i <= len(words):
                by_word[words[i - 1]] += w
            else:
                assert w == 0  # padding or an unknown word
        return np.array(list(by_word.values()))

    got = np.array([summed(r["ids"], r["weights"]) for r in transformed])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    served = output.transform_raw_features({"t": tf.constant([["dog fox fox zebra"], [""], ["zebra unicorn"],
                                                              ["dog\x00fox"]])})
    expected = vectorizer.transform(["dog fox fox", "", "", "dog fox"]).toarray()
    np.testing.assert_allclose([summed(i, w) for i, w in zip(served["ids"].numpy(), served["weights"].numpy())],
                               expected, atol=1e-5)


def test_z_scores_of_columns_missing_for_whole_batches(tmp_path):
    """The one elementwise analyzer over all numbers: a column absent from the first two thousand
    rows (whole Beam batches with no value of it) still gets its own mean and deviation."""
    rng = np.random.default_rng(0)
    late, full = rng.normal(5.0, 2.0, 3000), rng.normal(-1.0, 0.5, 3000)
    spec = {"late": tf.io.VarLenFeature(tf.float32), "full": tf.io.FixedLenFeature([1], tf.float32),
            "label": tf.io.FixedLenFeature([1], tf.int64)}
    rows = [{"late": [late[i]] if i >= 2000 else [], "full": [full[i]], "label": [0]} for i in range(3000)]
    fn = functools.partial(preprocessing_fn, custom_config={"task": "binary", "targets": [["label", "binary"]]})
    transformed, _ = _analyze_and_write(tmp_path, spec, rows, fn)
    present = late[2000:]
    np.testing.assert_allclose(_column(transformed, "late_xf")[2000:], (present - present.mean()) / present.std(),
                               atol=1e-4)
    assert not _column(transformed, "late_xf")[:2000].any()  # missing -> the mean
    np.testing.assert_allclose(_column(transformed, "full_xf"), (full - full.mean()) / full.std(), atol=1e-4)


def _numpy_bases(window, lag, horizon):
    """The oracle of components.forecast_bases: the seasonal profile on three levels, the last value
    and its drift, then all on logs."""
    def forms(w):
        count = len(w) // lag
        seasons = w[len(w) - count * lag:].reshape(count, lag)
        means = seasons.mean(axis=1)
        profile = (seasons - means[:, None]).mean(axis=0)[[step % lag for step in range(horizon)]]
        slope = (means[-1] - means[0]) / max((count - 1) * lag, 1)
        smoothed = means[0]
        for mean in means[1:]:
            smoothed = 0.5 * mean + 0.5 * smoothed
        walk = (w[-1] - w[0]) / (len(w) - 1)
        return [means[-1] + profile, means[-1] + slope * lag * (np.arange(horizon) // lag + 1) + profile,
                smoothed + profile, np.full(horizon, w[-1]), w[-1] + walk * np.arange(1, horizon + 1)]
    units = forms(window)
    return units + ([np.exp(f) for f in forms(np.log(window))] if (window > 0).all() else units)


@pytest.mark.parametrize("season, length", [(12, 24), (4, 6), (1, 10)])
def test_a_series_window_is_scaled_by_its_own_seasonal_naive_error(season, length):
    """The gate's MASE: a scaled target's error is the forecast's error over the window's in-sample
    seasonal naive MAE, release.forecast_baselines.mase_scale's rule (lag 1 under two seasons); the
    base is the one of the ten whose scaled error over the windows is lowest; the served forecast
    undoes both."""
    from components.features import FORECAST_BASE, FORECAST_OFFSET, FORECAST_SCALE
    from release.forecast_baselines import mase_scale

    rng = np.random.default_rng(season)
    windows = rng.uniform(10, 1000, (3, 1)) * (1 + 0.3 * np.sin(np.arange(length) * 2 * np.pi / max(season, 2))
                                                + rng.normal(0, 0.05, (3, length)))
    targets = rng.uniform(10, 1000, (3, 5))
    out = transform.window_scaled_features({"window": tf.constant(windows, tf.float32),
                                            "target": tf.constant(targets, tf.float32)},
                                           "window", [length, 1], "target", season, 5,
                                           over_windows=lambda errors: tf.reduce_mean(errors, axis=0))
    scale, base = out[FORECAST_SCALE].numpy().reshape(-1), out[FORECAST_OFFSET].numpy()
    np.testing.assert_allclose(scale, [mase_scale(w, season) for w in windows], rtol=1e-4)
    lag = season if 2 * season <= length else 1
    bases = np.array([_numpy_bases(w, lag, 5) for w in windows])  # [window, base, step]
    errors = (np.abs(targets[:, None, :] - bases).mean(axis=2) / scale[:, None]).mean(axis=0)
    expected = bases[:, int(np.argmin(errors))]
    np.testing.assert_allclose(base, expected, rtol=1e-4)
    assert out[FORECAST_BASE].numpy().reshape(-1).tolist() == [int(np.argmin(errors))] * 3  # the Trainer reports it
    scaled = out[transform.transformed_name("target")].numpy()
    np.testing.assert_allclose(np.abs(scaled), np.abs(targets - expected) / scale[:, None], rtol=1e-3)
    assert out[transform.transformed_name("window")].shape == (3, length, 1)


@pytest.mark.parametrize("kind, chosen", [("flat", "last season"), ("trend", "drift"), ("growth", "drift on logs"),
                                          ("unseasonal line", "last value and its drift")])
def test_the_train_windows_choose_the_base_that_forecasts_their_kind_of_series(kind, chosen):
    """A seasonal series around a level, on a line, and growing by a rate (its season with it): the
    base of that kind forecasts the next season exactly and is chosen; a curve with no season takes
    the last value and its drift; a window with a value <= 0
    takes the units' form of a logs base; the edge model's one base is the same base."""
    from components import forecast_bases

    t = np.arange(30, dtype=np.float64)
    season = np.tile([3.0, -1.0, 4.0, -6.0], 8)[:30]
    series = {"flat": 50 + season, "trend": 50 + 2 * t + season, "unseasonal line": 50 + 2 * t + t ** 1.5,
              "growth": 10 * 1.05 ** t * (1 + season / 10)}[kind]
    windows = np.array([series[i:i + 8] for i in range(18)])
    targets = np.array([series[i + 8:i + 12] for i in range(18)])
    candidates = forecast_bases.candidate_bases(tf.constant(windows, tf.float32), 4, 4)
    errors = forecast_bases.base_errors(candidates, tf.constant(targets, tf.float32), tf.ones([18, 1]))
    base, index = forecast_bases.chosen_base(candidates, errors, lambda e: tf.reduce_mean(e, axis=0))
    assert forecast_bases.BASE_NAMES[int(index)] == chosen
    if kind != "unseasonal line":  # a curve: no base is exact, the last value and its drift come nearest
        np.testing.assert_allclose(base.numpy(), targets, rtol=1e-4)
    crossing = forecast_bases.candidate_bases(tf.constant([[-1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]]), 4, 4)
    forms = len(forecast_bases.LEVELS)
    np.testing.assert_allclose(crossing[:, forms:].numpy(), crossing[:, :forms].numpy())
    for one, values in ((int(index), windows), (forms + 1, windows[:, ::-1] - 60)):  # the edge model's one base
        values = tf.constant(values, tf.float32)
        np.testing.assert_allclose(forecast_bases.one_base(values, 4, 4, one).numpy(),
                                   forecast_bases.candidate_bases(values, 4, 4)[:, one].numpy(), rtol=1e-6)
