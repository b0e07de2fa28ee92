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
