"""The gate metrics (components.gate_metrics) against scikit-learn, the edge parity gate built on
them, and the one tf.Example codec (serving.codec.examples) in both directions."""
import gzip

import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import roc_auc_score

from components import gate_metrics as metrics
from serving.codec import examples


def test_rank_auc_equals_scikit_learn_with_ties_and_none_for_one_class():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300) + 0.4 * labels, 1)  # rounded: many ties
    assert metrics.auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))
    assert metrics.auc(np.ones(5), np.linspace(0, 1, 5)) is None


@pytest.mark.parametrize("name, labels, predictions, expected", [
    ("sparse_categorical_accuracy", [0, 2, 1, 1], [[.9, .1, 0], [0, .2, .8], [.3, .6, .1], [.5, .4, .1]], 0.75),
    ("root_mean_squared_error", [1.0, 2.0, 3.0], [[1.0], [2.0], [5.0]], np.sqrt(4 / 3)),
    ("mean_absolute_error", [[1.0, 1.0], [0.0, 0.0]], [[2.0, 1.0], [0.0, -1.0]], 0.5),
    ("auc", [0, 0, 1, 1], [[.9, .1], [.6, .4], [.3, .7], [.2, .8]], 1.0),
])
def test_gate_metric_values(name, labels, predictions, expected):
    assert metrics.value(name, np.array(labels), np.array(predictions)) == pytest.approx(expected)


def test_unknown_metric_is_named():
    with pytest.raises(ValueError, match="no gate metric named 'f1'"):
        metrics.value("f1", np.zeros(2), np.zeros(2))


def test_worsening_is_points_for_scores_and_relative_for_errors():
    assert metrics.worsening("auc", 0.90, 0.88) == pytest.approx(0.02)
    assert metrics.worsening("root_mean_squared_error", 2.0, 2.2) == pytest.approx(0.1)
    assert metrics.worsening("mean_absolute_error", 2.0, 1.0) < 0  # better


def test_edge_parity_accepts_within_tolerance_and_names_the_metric_drop():
    from components.edge_parity import parity

    labels = np.array([0, 1, 0, 1, 1, 0])
    reference = {"predictions": np.array([[.1], [.9], [.2], [.8], [.7], [.3]])}
    close = {"predictions": reference["predictions"] + 0.001}
    result = parity(close, reference, "binary", labels, {"metric_drop": 0.01, "max_abs_diff": 0.01})
    assert result["accepted"] and result["metric"] == "auc" and result["metric_drop"] == pytest.approx(0.0)
    flipped = {"predictions": 1 - reference["predictions"]}
    refused = parity(flipped, reference, "binary", labels, {"metric_drop": 0.01, "max_abs_diff": None})
    assert not refused["accepted"] and "auc 0.0000 vs 1.0000 (drop 1.0000 > 0.01)" in refused["reason"]


def test_edge_parity_counts_a_verdict_flipped_at_its_threshold_apart_from_the_scores():
    from components.edge_parity import parity

    labels = np.array([0, 1, 0, 1])
    reference = {"anomaly_probability": np.array([[.1], [.9], [.5], [.8]]),
                 "is_anomaly": np.array([[0.], [1.], [0.], [1.]])}
    edge = {"anomaly_probability": reference["anomaly_probability"] + 1e-6,
            "is_anomaly": np.array([[0.], [1.], [1.], [1.]])}  # the row on the threshold rounded the other way
    result = parity(edge, reference, "anomaly", labels, {"metric_drop": 0.001, "max_abs_diff": 1e-4})
    assert result["accepted"], result["reason"]
    assert result["max_abs_diff"] == pytest.approx(1e-6) and result["verdict_flips"] == 0.25
    drifted = {**edge, "anomaly_probability": reference["anomaly_probability"] + 0.01}
    assert "max |diff| 1.00e-02 > 0.0001" in parity(drifted, reference, "anomaly", labels,
                                                    {"metric_drop": None, "max_abs_diff": 1e-4})["reason"]


def test_edge_parity_lets_an_accuracy_move_by_one_row_at_least():
    """On 50 rows one flipped row is 2 points of accuracy: a 1-point limit would allow no row at all."""
    from components.edge_parity import parity

    labels = np.arange(50) % 2
    reference = {"predictions": np.where(labels[:, None] == 1, [[0.2, 0.8]], [[0.8, 0.2]])}
    one = {"predictions": reference["predictions"].copy()}
    one["predictions"][0] = [0.49, 0.51]  # the first row, on its boundary, goes the other way
    result = parity(one, reference, "multiclass", labels, {"metric_drop": 0.01, "max_abs_diff": None})
    assert result["accepted"] and result["metric_drop"] == pytest.approx(0.02) and result["metric_drop_limit"] == 0.02
    two = {"predictions": one["predictions"].copy()}
    two["predictions"][2] = [0.49, 0.51]
    refused = parity(two, reference, "multiclass", labels, {"metric_drop": 0.01, "max_abs_diff": None})
    assert not refused["accepted"] and "(drop 0.0400 > 0.02)" in refused["reason"]


def test_edge_parity_holds_large_outputs_to_their_own_scale():
    """Prices near 180,000 differ by float32's rounding (~0.4): within 1e-4 of the outputs' size."""
    from components.edge_parity import parity

    labels = np.array([150_000.0, 182_000.0, 240_000.0, 99_000.0])
    reference = {"predictions": np.array([[151_000.0], [180_000.0], [238_500.0], [101_000.0]])}
    rounded = {"predictions": reference["predictions"] + np.array([[0.375], [-0.25], [0.5], [0.0]])}
    result = parity(rounded, reference, "regression", labels, {"metric_drop": 0.001, "max_abs_diff": 1e-4})
    assert result["accepted"], result["reason"]
    assert result["max_abs_diff"] == 0.5 and result["output_scale"] == 238_500.0
    drifted = {"predictions": reference["predictions"] + 100.0}  # 4e-4 of the largest output
    refused = parity(drifted, reference, "regression", labels, {"metric_drop": None, "max_abs_diff": 1e-4})
    assert not refused["accepted"] and "max |diff| 1.00e+02 > 0.0001 x 2.385e+05" in refused["reason"]


def test_codec_round_trips_kinds_and_leaves_missing_values_out():
    row = {"count": 3, "amount": 2.5, "segment": "online", "pixels": [0.0, 1.0], "gap": None, "nan": float("nan"),
           "empty": "", "ids": np.array([1, 2], dtype=np.int64), "raw": b"\x00\x01"}
    decoded = examples.decode(examples.encode(row))
    assert decoded == {"count": [3], "amount": [2.5], "segment": ["online"], "pixels": [0.0, 1.0], "ids": [1, 2],
                       "raw": ["\x00\x01"]}
    parsed = tf.train.Example.FromString(examples.encode(row)).features.feature
    assert parsed["count"].WhichOneof("kind") == "int64_list" and parsed["amount"].WhichOneof("kind") == "float_list"
    assert examples.decode(examples.encode(row), ["segment", "absent"], text=False) == \
        {"segment": [b"online"], "absent": []}
    assert [examples.scalar_or_list(v) for v in ([], [1], [1, 2])] == [None, 1, [1, 2]]


def test_read_records_takes_the_first_n_of_plain_and_gzipped_files(tmp_path):
    records = [examples.encode({"i": i}) for i in range(10)]
    plain = tmp_path / "data.tfrecord"
    with tf.io.TFRecordWriter(str(plain)) as writer:
        for record in records:
            writer.write(record)
    zipped = tmp_path / "data.tfrecord.gz"
    zipped.write_bytes(gzip.compress(plain.read_bytes()))
    assert examples.read_records([plain]) == records
    assert examples.read_records([zipped], 3) == records[:3]
    assert examples.read_records([]) == []
