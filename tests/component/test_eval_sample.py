"""The Evaluator reads at most MAX_EVAL_ROWS of the eval split: a uniform sample beyond it, said in
the evaluation's properties, the run summary and the model card."""
import tensorflow as tf
from tfx.types import standard_artifacts

from components.evaluation import _sample
from core.run_report import RunReport
from pipelines.configure import RunRequest, build_config
from pipelines.summary import format_summary
from release.model_card import _caveats


def _examples(tmp_path, rows: int):
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    examples.split_names = '["train", "eval"]'
    examples.set_string_custom_property("payload_format", "FORMAT_TF_EXAMPLE")
    (tmp_path / "examples" / "Split-eval").mkdir(parents=True)
    for shard in range(2):
        with tf.io.TFRecordWriter(str(tmp_path / "examples" / "Split-eval" / f"data-{shard}.gz"), "GZIP") as out:
            for i in range(rows // 2):
                out.write(tf.train.Example(features=tf.train.Features(feature={"i": tf.train.Feature(
                    int64_list=tf.train.Int64List(value=[shard * 1000 + i]))})).SerializeToString())
    return examples


def test_a_split_within_the_cap_is_read_as_it_is(tmp_path):
    examples = _examples(tmp_path, 40)
    sampled, rows, used = _sample(examples, "eval", 40, str(tmp_path / "sample"))
    assert sampled is examples and rows == used == 40 and not (tmp_path / "sample").exists()


def test_a_larger_split_is_sampled_into_a_new_artifact(tmp_path):
    examples = _examples(tmp_path, 60)
    sampled, rows, used = _sample(examples, "eval", 25, str(tmp_path / "sample"))
    assert (rows, used) == (60, 25) and sampled.uri == str(tmp_path / "sample")
    assert sampled.split_names == '["eval"]'
    assert sampled.get_string_custom_property("payload_format") == "FORMAT_TF_EXAMPLE"
    records = list(tf.data.TFRecordDataset(str(tmp_path / "sample" / "Split-eval" / "sample.gz"), "GZIP"))
    assert len(records) == 25 and len(set(r.numpy() for r in records)) == 25


def test_the_summary_and_the_card_say_when_metrics_are_on_a_sample(tmp_path):
    config = build_config(RunRequest(use_case="fraud", home=str(tmp_path / "home")))
    report = RunReport(pipeline="big", metrics={"overall": {"auc": 0.9}}, eval_rows={"rows": 250_000, "used": 100_000})
    assert "eval metrics (eval split; a uniform sample of 100,000 of its 250,000 rows):" in format_summary(config,
                                                                                                          report)
    assert any("sample of 100,000 of the eval split's 250,000 rows" in c for c in _caveats(config, report, [], []))
    whole = RunReport(pipeline="small", metrics={"overall": {"auc": 0.9}}, eval_rows={"rows": 60, "used": 60})
    assert "eval metrics (eval split):" in format_summary(config, whole)
    assert not any("sample" in c for c in _caveats(config, whole, [], []))


# --- slices too small to judge ------------------------------------------------------------------

def _slice_key(*pairs):
    from tensorflow_model_analysis.slicer import slicer_lib

    return slicer_lib.serialize_slice_key(tuple(pairs))


def _failure(result, pairs, threshold, value=0.0, message=""):
    from tensorflow_model_analysis.proto import config_pb2

    per_slice = result.metric_validations_per_slice.add()
    per_slice.slice_key.CopyFrom(_slice_key(*pairs))
    failure = per_slice.failures.add()
    failure.metric_key.name = "auc"
    failure.metric_value.double_value.value = value
    failure.message = message
    if threshold == "bound":
        failure.metric_threshold.value_threshold.lower_bound.value = 0.7
    else:
        failure.metric_threshold.change_threshold.absolute.value = -0.05
        failure.metric_threshold.change_threshold.direction = config_pb2.MetricDirection.HIGHER_IS_BETTER
        failure.metric_key.is_diff = True
    return result


def _evaluation_files(tmp_path, result, counts):
    """An Evaluator output as TFMA writes it: metrics per slice (example counts) and the validation."""
    from tensorflow_model_analysis.proto import metrics_for_slice_pb2

    folder = tmp_path / "evaluation"
    folder.mkdir()
    with tf.io.TFRecordWriter(str(folder / "metrics-00000-of-00001.tfrecord")) as out:
        for pairs, rows in counts.items():
            metrics = metrics_for_slice_pb2.MetricsForSlice(slice_key=_slice_key(*pairs))
            item = metrics.metric_keys_and_values.add()
            item.key.name = "example_count"
            item.value.double_value.value = rows
            out.write(metrics.SerializeToString())
    with tf.io.TFRecordWriter(str(folder / "validations.tfrecord")) as out:
        out.write(result.SerializeToString())
    return folder


def _blessing(tmp_path, blessed: bool):
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "blessing")
    (tmp_path / "blessing").mkdir()
    (tmp_path / "blessing" / ("BLESSED" if blessed else "NOT_BLESSED")).write_text("")
    blessing.set_int_custom_property("blessed", int(blessed))
    return blessing


def test_a_slice_under_the_size_is_not_judged_and_the_model_is_blessed(tmp_path):
    """A 3-row slice that fell behind the baseline: its failure is taken back and TFX's blessing
    rewritten (file and property); the summary lists it as not judged."""
    import tensorflow_model_analysis as tfma
    from tensorflow_model_analysis.proto import validation_result_pb2

    from components.evaluation import _judge_slices_by_size
    from core.run_report import read_metrics, read_validation

    result = _failure(validation_result_pb2.ValidationResult(validation_ok=False), [("segment", "kiosk")],
                      "change", -0.5)
    folder = _evaluation_files(tmp_path, result, {(): 96, (("segment", "kiosk"),): 3, (("segment", "online"),): 40})
    blessing = _blessing(tmp_path, False)
    _judge_slices_by_size(str(folder), blessing)
    kept = tfma.load_validation_result(str(folder))
    assert kept.validation_ok and not kept.metric_validations_per_slice
    assert (tmp_path / "blessing" / "BLESSED").exists() and not (tmp_path / "blessing" / "NOT_BLESSED").exists()
    assert blessing.get_int_custom_property("blessed") == 1
    assert read_validation(str(folder)) == "passed every threshold"
    report = RunReport(pipeline="p", metrics=read_metrics(str(folder)), blessed=True,
                       blessing_reason="passed every threshold")
    assert report.unjudged_slices == {"segment=kiosk": 3}
    config = build_config(RunRequest(use_case="fraud", home=str(tmp_path / "home")))
    assert "slices not judged (fewer than 10 eval rows; shown, never gated): segment=kiosk (3 rows)" in \
        format_summary(config, report)


def test_a_judged_slice_or_the_overall_bound_still_refuses(tmp_path):
    """Only small slices are taken back: a 40-row slice's drop and the overall bound stand, and the
    summary names TFMA's real failure (the change vs baseline, or a metric not computed)."""
    from tensorflow_model_analysis.proto import validation_result_pb2

    from components.evaluation import _judge_slices_by_size
    from core.run_report import read_validation

    result = validation_result_pb2.ValidationResult(validation_ok=False)
    _failure(result, [("segment", "online")], "change", -0.08)
    _failure(result, [("segment", "kiosk")], "change", -0.5)
    _failure(result, [], "bound", 0.0, message="Metric not found.")
    folder = _evaluation_files(tmp_path, result, {(): 96, (("segment", "kiosk"),): 3, (("segment", "online"),): 40})
    blessing = _blessing(tmp_path, False)
    _judge_slices_by_size(str(folder), blessing)
    assert blessing.get_int_custom_property("blessed") == 0 and (tmp_path / "blessing" / "NOT_BLESSED").exists()
    assert read_validation(str(folder)) == (
        "segment=online: auc change vs baseline = -0.0800, needs >= -0.05; "
        "overall: auc not computed (its threshold: >= 0.7)")
    # a forecaster's summary calls its gate metric by what it is
    assert read_validation(str(folder), names={"auc": "the gate metric"}) == (
        "segment=online: the gate metric change vs baseline = -0.0800, needs >= -0.05; "
        "overall: the gate metric not computed (its threshold: >= 0.7)")
