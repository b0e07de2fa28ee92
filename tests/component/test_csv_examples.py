"""The pyarrow ExampleGen writes TFX's CsvExampleGen records: same types, bytes and splits.
TFX's own CSV-to-Example transform runs here on real Beam as the reference."""
import collections
import gzip
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import tensorflow as tf
from tfx.components.example_gen import base_example_gen_executor
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts

from components import csv_examples as ce
from pipelines.inputs.preflight import profile_source
from pipelines.inputs.staging import stage
from pipelines.inputs.tables import open_table
from tests.messy_tables import clinic_visits_csv

TRICKY = """a,b,c,d,e,f,g,h,i,j,k
1,1.5,x,,+5, 7,1e5,0x10,99999999999999999999,-3,nan
-2,,"y, z",,007,8,inf,3,1,,1_0
,2,"",,1_000,9,-Infinity,4,2,4,2.5
3,-0.25,élan,,6,10,.5,5,3,-9223372036854775808,
"""
SPLIT_CONFIG = example_gen_pb2.SplitConfig(splits=[
    example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=3),
    example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=1)])


@pytest.mark.parametrize("cell", [b"", b"1", b"-0", b"007", b"+5", b" 7", b"1_000", b"0x10", b"1.5", b".5", b"1.",
                                  b"1e5", b"nan", b"-Infinity", b"99999999999999999999", b"x", b"1,5"])
def test_a_columns_kind_is_tfx_rule_for_any_cell(cell):
    from tfx_bsl.coders.csv_decoder import _InferValueType

    expected = int(_InferValueType(cell))
    assert ce.python_kind(cell) == expected
    assert ce.column_kind(pa.array([cell.decode()])) == expected
    assert ce.column_kind(pa.array(["3", cell.decode(), ""])) == max(expected, ce.INT)


def test_varints_are_protobuf_varints():
    numbers = np.array([0, 1, 127, 128, 300, 2 ** 31, 2 ** 63 - 1, -1, -(2 ** 63)], np.int64)
    for number, encoded in zip(numbers.tolist(), ce.varints(numbers).to_pylist()):
        assert encoded == tf.train.Int64List(value=[number]).SerializeToString()[2:]  # after tag and length


def _tfx_records(csv_path: Path, tmp_path: Path) -> list:
    """TFX's CsvExampleGen transform on real Beam: each Example as TFX's partition hashes it."""
    import apache_beam as beam
    from tfx.components.example_gen.csv_example_gen.executor import _CsvToExample

    out = str(tmp_path / "tfx")
    with beam.Pipeline() as pipeline:
        _ = (pipeline | _CsvToExample({"input_base": str(csv_path.parent)}, csv_path.name)
             | beam.Map(lambda e: e.SerializeToString(deterministic=True))
             | beam.io.WriteToTFRecord(out, num_shards=1))
    return list(tf.data.TFRecordDataset(f"{out}-00000-of-00001").as_numpy_iterator())


def _staged_clinic_visits(tmp_path: Path) -> Path:
    path, label = clinic_visits_csv(tmp_path / "visits.csv")
    source = open_table(path)
    profile = profile_source(source, [label])
    keep = [c.key for c in profile.columns if c.role in ("feature", "label")]
    return stage(source, tmp_path / "staged" / "visits.csv", keep, {c.key: c.kind.kind for c in profile.columns},
                 ["malignant"])


@pytest.mark.parametrize("table", ["tricky", "staged"])
def test_records_and_splits_are_tfx_csv_example_gens(table, tmp_path):
    if table == "tricky":
        csv_path = tmp_path / "in" / "tricky.csv"
        csv_path.parent.mkdir()
        csv_path.write_text(TRICKY, encoding="utf-8")
    else:
        csv_path = _staged_clinic_visits(tmp_path)
    files, names = ce.split_files(str(csv_path.parent), csv_path.name)
    kinds = ce.infer_kinds(files, names)
    ours = [r for batch in ce.batches(files[0], names) for r in ce.examples(batch, kinds).to_pylist()]
    reference = _tfx_records(csv_path, tmp_path)
    assert len(ours) == len(reference) > 0 and collections.Counter(ours) == collections.Counter(reference)
    for record in ours:
        example = tf.train.Example.FromString(record)
        assert ce.split_index(record, [3, 4]) == base_example_gen_executor._PartitionFn(example, 2, [3, 4],
                                                                                          SPLIT_CONFIG)
    if table == "tricky":
        assert [kinds[k] for k in "abcdefghijk"] == [ce.INT, ce.FLOAT, ce.STRING, ce.UNKNOWN, ce.INT, ce.INT,
                                                     ce.FLOAT, ce.STRING, ce.STRING, ce.INT, ce.FLOAT]


def _split_properties(folder, name: str) -> dict:
    return {
        "input_base": str(folder),
        "input_config": json.dumps({"splits": [{"name": "data", "pattern": name}]}),
        "output_config": json.dumps({"split_config": {"splits": [{"name": "train", "hash_buckets": 3},
                                                                 {"name": "eval", "hash_buckets": 1}]}}),
        "output_data_format": example_gen_pb2.FORMAT_TF_EXAMPLE,
        "output_file_format": example_gen_pb2.FORMAT_TFRECORDS_GZIP,
    }


def test_a_split_left_empty_is_named_not_left_to_the_transform(tmp_path):
    """Copies of one row hash alike: every copy falls in one split (the Transform failed on the
    other with a KeyError naming the label)."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "same.csv").write_text("x,y\n" + "1,0\n" * 30)
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "out")
    with pytest.raises(ValueError, match=r"^the (train|eval) split got no rows of the 30: a row's content picks"):
        ce.CsvExamplesExecutor().Do({}, {"examples": [examples]}, _split_properties(folder, "same.csv"))


def test_the_executor_writes_shuffled_gzipped_splits_in_shards(tmp_path, monkeypatch):
    from tests.helpers import write_transactions_csv

    data = write_transactions_csv(tmp_path / "in" / "tx.csv", rows=3000)
    monkeypatch.setattr(ce, "SHARD_BYTES", data.stat().st_size // 2 + 1)  # two shards per split
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "out")
    ce.CsvExamplesExecutor().Do({}, {"examples": [examples]}, _split_properties(data.parent, "tx.csv"))
    assert json.loads(examples.split_names) == ["train", "eval"]
    assert examples.get_string_custom_property("payload_format") == "FORMAT_TF_EXAMPLE"
    assert examples.get_string_custom_property("file_format") == "tfrecords_gzip"
    rows = {}
    for split in ("train", "eval"):
        files = sorted((tmp_path / "out" / f"Split-{split}").iterdir())
        assert [f.name for f in files] == [f"data_tfrecord-0000{i}-of-00002.gz" for i in range(2)]
        gzip.open(files[0]).read(1)  # gzip, as TFX writes
        rows[split] = list(tf.data.TFRecordDataset([str(f) for f in files], "GZIP").as_numpy_iterator())
        assert all(ce.split_index(r, [3, 4]) == (split == "eval") for r in rows[split])
    assert len(rows["train"]) + len(rows["eval"]) == 3000 and 0.2 < len(rows["eval"]) / 3000 < 0.3
    files, names = ce.split_files(str(data.parent), data.name)
    kinds = ce.infer_kinds(files, names)
    in_file_order = [r for b in ce.batches(files[0], names) for r in ce.examples(b, kinds).to_pylist()
                     if ce.split_index(r, [3, 4]) == 0]
    assert sorted(rows["train"]) == sorted(in_file_order)  # the same records,
    assert rows["train"] != in_file_order  # not in the file's order: shuffled, as TFX's Reshuffle leaves them
