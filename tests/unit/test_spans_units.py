"""Span layouts (span-N/ and YYYYMMDD/), --span and --window, curated schemas with drift
comparators, and the comparators' reading of TFDV's measurements (no TFX run)."""
from pathlib import Path

import pytest
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2

from cli.main import main
from components.comparators import (
    CATEGORICAL_MEASURE,
    DRIFT,
    NUMERIC_MEASURE,
    SKEW,
    comparators,
    distances,
    format_distances,
    set_comparators,
)
from pipelines.inputs.preflight import InputDataError
from pipelines.inputs.schema import SchemaExistsError, pinned_copy, write_curated_schema
from pipelines.inputs.spans import DATED, NUMBERED, detect
from pipelines.inputs.synthetic import write_spans
from tests.helpers import run_cli_config, write_transactions_csv

ARGS = ("--label", "is_fraud", "--task", "binary")


def _folder(root: Path, *names: str) -> Path:
    for name in names:
        write_transactions_csv(root / name / "part.csv", rows=40)
    return root


def test_numbered_and_dated_layouts(tmp_path):
    numbered = detect(_folder(tmp_path / "a", "span-1", "span-2", "span-10"))
    assert numbered.pattern == NUMBERED and numbered.newest == 10 and numbered.parse("2") == 2
    dated = detect(_folder(tmp_path / "b", "20261120", "20261121"))
    assert dated.pattern == DATED and dated.label(dated.newest) == "20261121"
    assert dated.parse("2026-11-20") == dated.parse("20261120") == dated.newest - 1  # days since 1970-01-01
    assert detect(tmp_path / "a" / "span-1" / "part.csv") is None  # a file: not a span layout


@pytest.mark.parametrize("names, message", [
    ((), "needs CSV or Parquet parts, or span folders"),
    (("span-1", "20261120"), "both span-N and YYYYMMDD folders"),
])
def test_bad_layouts_are_named(tmp_path, names, message):
    root = _folder(tmp_path / "data", *names)
    root.mkdir(exist_ok=True)
    with pytest.raises(InputDataError, match=message):
        detect(root)


def test_unknown_span_and_empty_span_folder(tmp_path):
    layout = detect(_folder(tmp_path / "data", "span-1"))
    with pytest.raises(InputDataError, match=r"no folder span-7 \(spans: span-1\)"):
        layout.parse("7")
    with pytest.raises(InputDataError, match="give a span number"):
        layout.parse("yesterday")
    (tmp_path / "data" / "span-2").mkdir()
    with pytest.raises(InputDataError, match=r"span-2: no \*\.csv file"):
        detect(tmp_path / "data").csv_of(2)


def test_cli_config_of_a_span_folder(tmp_path, capsys):
    write_spans(tmp_path / "data", spans=3, rows=50)
    config = run_cli_config("--data", str(tmp_path / "data"), *ARGS, home=tmp_path / "home")
    assert config.span_pattern == NUMBERED and config.span is None and config.window_spans == 3
    assert config.name == "data" and config.as_params()["span"] == "newest"
    again = run_cli_config("--data", str(tmp_path / "data"), *ARGS, "--span", "2", "--window", "1",
                           home=tmp_path / "home")
    assert again.span == 2 and again.window_spans == 1
    single = write_transactions_csv(tmp_path / "t.csv")
    for extra, message in ((("--data", str(single), "--span", "1"), "--span and --window need --data DIR"),
                           (("--data", str(tmp_path / "data"), "--window", "0"), "--window 0: need at least 1"),
                           (("--data", str(tmp_path / "data"), "--span", "9"), "no folder span-9")):
        assert main(["run", *extra, *ARGS, "--home", str(tmp_path / "home")]) == 2
        assert message in capsys.readouterr().err


def test_spans_share_one_concept_but_not_rows(tmp_path):
    first, second = write_spans(tmp_path, spans=2, rows=30)
    assert first.parent.name == "span-1" and second.parent.name == "span-2"
    assert first.read_text().splitlines()[0] == second.read_text().splitlines()[0]
    assert first.read_text() != second.read_text()


def _schema() -> schema_pb2.Schema:
    schema = schema_pb2.Schema()
    schema.feature.add(name="amount", type=schema_pb2.FLOAT)
    schema.feature.add(name="segment", type=schema_pb2.BYTES)
    schema.feature.add(name="is_fraud", type=schema_pb2.INT)
    return schema


def test_comparators_by_kind_and_the_measured_distances():
    schema = _schema()
    set_comparators(schema, DRIFT, categorical=0.2, numeric=0.05, skip=["is_fraud"])
    assert comparators(schema, DRIFT) == {"amount": (NUMERIC_MEASURE, 0.05), "segment": (CATEGORICAL_MEASURE, 0.2)}
    assert comparators(schema, SKEW) == {}
    anomalies = anomalies_pb2.Anomalies()
    info = anomalies.drift_skew_info.add()
    info.path.step.append("amount")
    info.drift_measurements.add(value=0.3, threshold=0.05)
    rows = distances(anomalies, schema, DRIFT)
    assert [(r.feature, r.distance, r.flagged) for r in rows] == [("amount", 0.3, True), ("segment", None, False)]
    table = format_distances(rows, "DRIFTED")
    assert "DRIFTED" in table[1] and table[2].split()[2:] == ["n/a", "0.2", "ok"]


def test_curated_schema_is_written_once_and_imported_by_content(tmp_path):
    from google.protobuf import text_format

    source = tmp_path / "inferred.pbtxt"
    source.write_text(text_format.MessageToString(_schema()))
    target = tmp_path / "schemas" / "x" / "schema.pbtxt"
    write_curated_schema(source, target, categorical=0.1, numeric=0.1)
    assert target.read_text().count("drift_comparator") == 3
    with pytest.raises(SchemaExistsError, match="already there"):
        write_curated_schema(source, target, categorical=0.3, numeric=0.3)
    copy = pinned_copy(target, tmp_path / "home")
    assert pinned_copy(target, tmp_path / "home") == copy and copy.read_text() == target.read_text()
    target.write_text(target.read_text().replace("0.1", "0.15"))  # edited: imported again, at a new path
    assert pinned_copy(target, tmp_path / "home") != copy


def test_schema_command_needs_a_run_first(tmp_path, capsys):
    assert main(["schema", "nothing", "--home", str(tmp_path), "--schemas-dir", str(tmp_path / "s")]) == 2
    assert "no ML Metadata store" in capsys.readouterr().err


def test_summary_line_of_the_drift_check():
    from pipelines.inputs.spans import span_name
    from pipelines.summary import format_drift_check

    def name(span):
        return span_name(DATED, span)

    first = format_drift_check({"span": 1, "previous_span": None}, name)
    assert first == "drift: not checked (no earlier accepted span)"
    assert "no drift comparators" in format_drift_check(
        {"previous_span": 1, "features": [], "note": "the schema has no drift comparators"}, name)
    rows = [{"feature": "amount", "distance": 0.05, "threshold": 0.1},
            {"feature": "segment", "distance": 0.09, "threshold": 0.3}]
    assert format_drift_check({"previous_span": 20412, "features": rows}, name) == \
        "drift vs 20251120: 2 features within their thresholds (closest: amount 0.0500 of 0.1)"
    with_defaults = format_drift_check({"previous_span": 20412, "features": rows, "default_comparators": True}, name)
    assert with_defaults.endswith("(default comparators: `mlops schema NAME` writes a curated schema that overrides "
                                  "them)")


def test_default_drift_comparators_cover_every_feature_of_a_schema_without_any():
    from tensorflow_metadata.proto.v0 import schema_pb2

    from components.comparators import DRIFT, comparators, set_comparators

    schema = schema_pb2.Schema()
    schema.feature.add(name="amount", type=schema_pb2.FLOAT)
    schema.feature.add(name="segment", type=schema_pb2.BYTES)
    assert comparators(schema, DRIFT) == {}
    set_comparators(schema, DRIFT)  # what DriftGate does when the schema has none (components.drift)
    assert comparators(schema, DRIFT) == {"amount": ("JENSEN_SHANNON_DIVERGENCE", 0.1),
                                          "segment": ("L_INFTY", 0.1)}
