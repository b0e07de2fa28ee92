"""Reading users' tables: feature keys for any header, dialects and containers, the staged copy
ExampleGen reads, and the Python date parts the edge host computes (equal to the graph's)."""
import csv
import gzip
import re

import pytest

from pipelines.inputs.column_kinds import InputDataError, feature_key, feature_keys
from pipelines.inputs.preflight import profile_source
from pipelines.inputs.staging import stage
from pipelines.inputs.tables import batches, open_table
from tests.messy_tables import clinic_visits_csv, diabetes_parquet, r_iris_csv_gz


@pytest.mark.parametrize("name, key", [
    ("Malic Acid", "malic_acid"), ("Sepal.Length", "sepal_length"), ("2nd gear", "col_2nd_gear"), ("1960", "col_1960"),
    ("Sale-Price", "sale_price"), ("mean radius", "mean_radius"), ("Café Crème", "cafe_creme"),
    ("", "column"), ("???", "column"), ("camelCaseName", "camel_case_name"), ("  x  ", "x"),
])
def test_feature_key(name, key):
    assert feature_key(name) == key


def test_feature_keys_are_unique_in_order():
    assert feature_keys(["A b", "a_b", "a-b", "", ""]) == ["a_b", "a_b_2", "a_b_3", "column", "column_2"]


def _text_rows(source):
    return sum(batch.num_rows for _, batch in batches(source))


def test_a_spreadsheet_export_with_bom_semicolons_crlf_and_quotes(tmp_path):
    path, label = clinic_visits_csv(tmp_path / "visits.csv")
    source = open_table(path)
    assert source.delimiter == ";" and source.columns.names[0] == "Patient ID"  # BOM gone
    assert source.columns.keys[-2:] == ("doctor_s_note", "malignant")
    assert _text_rows(source) == 569
    profile = profile_source(source, [label])
    assert profile.task == "binary" and 0 < profile.label_missing < 30
    roles = {c.key: c.role for c in profile.columns}
    assert roles["patient_id"] == "identifier" and roles["visit_date"] == "feature"


def test_gzip_r_export_and_a_folder_of_parts(tmp_path):
    path, label = r_iris_csv_gz(tmp_path / "iris.csv.gz")
    profile = profile_source(open_table(path), [label])
    assert profile.task == "multiclass" and profile.column_map.keys[0] == "column"
    assert {c.key: c.role for c in profile.columns}["column"] == "identifier"  # R's row numbers
    parts = tmp_path / "parts"
    parts.mkdir()
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    (parts / "a.csv").write_text("\n".join(lines[:80]) + "\n")
    (parts / "b.csv").write_text("\n".join([lines[0], *lines[80:]]) + "\n")
    assert _text_rows(open_table(parts)) == 150
    (parts / "c.csv").write_text("x,y\n1,2\n")
    with pytest.raises(InputDataError, match="c.csv: its header differs from a.csv's"):
        open_table(parts)


def test_parquet(tmp_path):
    path, label = diabetes_parquet(tmp_path / "diabetes.parquet")
    profile = profile_source(open_table(path), [label])
    assert profile.task == "regression" and profile.column_map.key(label) == "disease_progression"
    kinds = {c.key: c.kind.kind for c in profile.columns}
    assert kinds["is_male"] == "boolean" and kinds["serum_s1"] == "numeric"


@pytest.mark.parametrize("content, message", [
    (b"\x00\x01\x02binary\x00", "not a CSV file (binary content)"),
    ("naïve;label\n".encode("latin-1") + b"1;0\n" * 30, "not readable as utf-8"),
    (b"", "the CSV is empty"),
])
def test_unreadable_files_are_one_line(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(InputDataError, match=re.escape(message)) as error:
        open_table(path)
    assert "\n" not in str(error.value) and str(path) in str(error.value)


def test_another_encoding_reads_with_encoding(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("naïve;label\n".encode("latin-1") + b"1;0\n2;1\n" * 15)
    assert open_table(path, encoding="latin-1").columns.keys == ("naive", "label")


def test_the_staged_copy_is_what_exampleGen_reads_and_is_kept_when_unchanged(tmp_path):
    path, label = clinic_visits_csv(tmp_path / "visits.csv")
    source = open_table(path)
    profile = profile_source(source, [label])
    keep = [c.key for c in profile.columns if c.role in ("feature", "label")]
    kinds = {c.key: c.kind.kind for c in profile.columns}
    target = stage(source, tmp_path / "staged" / "visits.csv", keep, kinds, ["malignant"])
    first_line = target.read_text().splitlines()[0]
    assert first_line == ",".join(keep)  # unquoted: TFX splits the header on commas
    with target.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 569 - profile.label_missing
    assert {r["malignant"] for r in rows} == {"0", "1"} and "patient_id" not in rows[0]
    assert "NA" not in {r["mean_radius"] for r in rows} and "" in {r["mean_radius"] for r in rows}
    assert any(r["doctor_s_note"] == "seen; ok" for r in rows)
    mtime = target.stat().st_mtime_ns
    stage(source, target, keep, kinds, ["malignant"])
    assert target.stat().st_mtime_ns == mtime and not list(target.parent.glob(".*partial"))


def test_host_date_parts_equal_the_transform_graphs():
    import tensorflow as tf

    from components.transform import date_parts as graph_parts
    from serving.codec.columns import DATE_PARTS, date_parts

    cells = {"iso": ["2021-03-04", "2000-02-29T13:05:00", "1999-12-31 23:59", "", "bad",
                     "2014-13-45", "2014-02-29", "2016-02-30", "2021-03-04 24:00"],  # no real day: missing
             "mdy_slash": ["03/04/2021", "12/31/1999 10:00", "13/01/2021", "02/30/2021"], "ymd_slash": ["2021/03/04"]}
    missing = {"", "bad", "2014-13-45", "2014-02-29", "2016-02-30", "2021-03-04 24:00", "13/01/2021", "02/30/2021"}
    for fmt, values in cells.items():
        graph = graph_parts(tf.constant([[v] for v in values]), fmt)
        for i, value in enumerate(values):
            host = date_parts(value, fmt)
            got = [float(graph[p][i][0]) for p in DATE_PARTS]
            assert (host is None and all(g != g for g in got)) or got == [host[p] for p in DATE_PARTS], (fmt, value)
            assert (host is None) is (value in missing), (fmt, value)
    seconds = [1614877200.0, 0.0, 951782400.0 + 5 * 3600]
    graph = graph_parts(tf.constant([[s] for s in seconds], tf.float64), "unix")
    for i, value in enumerate(seconds):
        assert [float(graph[p][i][0]) for p in DATE_PARTS] == [date_parts(value, "unix")[p] for p in DATE_PARTS]


def test_request_rows_with_original_names(tmp_path):
    from serving.codec.columns import ColumnNames

    names = ColumnNames({"Mean Radius": "mean_radius", "Patient ID": "patient_id", "Malignant?": "malignant"},
                        {"patient_id": "identifier"}, ("malignant",))
    assert names.rename({"Mean Radius": 1.0, "Patient ID": "x", "Malignant?": "yes", "mean_area": 2}) == \
        {"mean_radius": 1.0, "mean_area": 2}
    document = {"instances": [{"Mean Radius": 1.0}], "signature_name": "s"}
    assert names.rename_document(document) == {"instances": [{"mean_radius": 1.0}], "signature_name": "s"}
    assert names.rename_document({"inputs": {"Mean Radius": [1.0]}}) == {"inputs": {"mean_radius": [1.0]}}
    assert ColumnNames().rename({"Any Name": 1}) == {"Any Name": 1}


def test_a_column_named_by_a_number_is_a_model_input():
    """Only the Transform's own constants are not model inputs, not every name that starts with '_'."""
    from components.features import FORECAST_SCALE, LABEL_OFFSET, is_model_input, transformed_name

    assert is_model_input(transformed_name("_1960"), {transformed_name("_2011")})
    assert not is_model_input(transformed_name("_2011"), {transformed_name("_2011")})
    assert not is_model_input(LABEL_OFFSET, set()) and not is_model_input(FORECAST_SCALE, set())
