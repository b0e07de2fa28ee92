"""The serving client (`mlops predict`)."""
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_predictions_go_to_the_stream_that_is_stdout_when_they_are_printed():
    """A default bound at import kept the stream of that moment (a test's capture, a closed pipe)."""
    import contextlib
    import io

    from serving.client import print_predictions

    for response, lines in (({"predictions": [[0.25], [0.75]]}, ["0\t[0.25]", "1\t[0.75]"]),
                            ({"outputs": {"a": 1}}, ['{"a": 1}'])):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            print_predictions(response)
        assert out.getvalue().splitlines() == lines


def test_a_bad_request_file_is_one_line_and_exit_2_before_any_server_is_asked(tmp_path, capsys):
    """The user's file is bad input (exit 2), not a refusal: no server listens on port 1 here."""
    from cli.main import main

    (tmp_path / "rows.json").write_text("{not json")
    (tmp_path / "rows.txt").write_text('"just text"')
    for name, message in (("missing.csv", "no such file"), ("rows.json", "not JSON"),
                          ("rows.txt", "expected a TF Serving request")):
        capsys.readouterr()
        assert main(["predict", "--model", "m", "--rest-port", "1", str(tmp_path / name)]) == 2, name
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err


def test_a_reader_that_closes_the_pipe_ends_the_command_quietly(monkeypatch, capsys):
    """`mlops predict ... | head -1`: the closed pipe is no error to report (a shell's status for SIGPIPE)."""
    from cli import serve
    from cli.main import main

    def printing_into_a_closed_pipe(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(serve, "cmd_predict", printing_into_a_closed_pipe)
    assert main(["predict", "--model", "m", "rows.csv"]) == 141
    assert capsys.readouterr().err == ""


def test_a_classifiers_columns_say_what_its_scores_are():
    from serving.codec.columns import ColumnNames, parse

    binary = ColumnNames({"Fraud?": "fraud"}, labels=("fraud",), classes={"fraud": ("no", "yes")})
    assert parse(binary.as_json()).classes == {"fraud": ("no", "yes")}
    assert binary.scores_note() == "each score is the probability that Fraud? is 'yes' (not 'no')"
    tiers = ColumnNames({"tier": "tier"}, labels=("tier",), classes={"tier": ("bronze", "gold", "silver")})
    assert tiers.scores_note() == "the scores are the probabilities of tier's classes, in this order: 'bronze', " \
                                  "'gold', 'silver'"
    assert ColumnNames({"y": "y"}, labels=("y",)).scores_note() == ""  # regression: no classes
    two_heads = ColumnNames({}, labels=("a", "b"), classes={"a": ("0", "1"), "b": ("0", "1")})
    assert two_heads.scores_note() == ""  # each head's output is named by its label already


def test_json_rows_lacking_a_column_are_refused_by_its_original_name_as_a_csv_is(tmp_path):
    """A probe's rows.json without two columns got the server's 400 (exit 1) naming feature keys."""
    import json

    import pytest

    from serving.client import RequestFileError, request_from_file
    from serving.codec.columns import ColumnNames

    inputs = {"web_description": {"dtype": "DT_STRING"}, "state": {"dtype": "DT_STRING"},
              "breach_date": {"dtype": "DT_STRING"}}
    columns = ColumnNames({"Web.Description": "web_description", "State": "state", "Breach.Date": "breach_date"})
    path = tmp_path / "rows.json"
    path.write_text(json.dumps([{"Web.Description": "a laptop", "State": "CA", "Breach.Date": "2014-03-05"},
                                {"Web.Description": "a server", "State": "NY"}]))
    with pytest.raises(RequestFileError, match=r"rows.json: row 2: missing column\(s\) the model needs: Breach.Date"):
        request_from_file(path, lambda: (inputs, columns))
    (tmp_path / "rows.csv").write_text("Web.Description,State\na laptop,CA\n")
    with pytest.raises(RequestFileError, match=r"rows.csv: missing column\(s\) the model needs: Breach.Date"):
        request_from_file(tmp_path / "rows.csv", lambda: (inputs, columns))
    path.write_text(json.dumps([{"Web.Description": "a laptop", "State": "CA", "breach_date": "2014-03-05"}]))
    assert request_from_file(path, lambda: (inputs, columns))[0]["instances"][0]["State"] == "CA"  # keys pass too



def test_a_csv_cell_its_column_does_not_read_is_named_by_file_and_line_before_the_server_is_asked(tmp_path):
    """A probe's CSV with a date in another order got the server's 'at row 0' (the request's row),
    where every other CSV mistake names the file and line."""
    import pytest

    from serving.client import RequestFileError, request_from_file
    from serving.codec.columns import ColumnNames

    inputs = {"breach_date": {"dtype": "DT_STRING"}, "paper": {"dtype": "DT_STRING"}}
    columns = ColumnNames({"Breach Date": "breach_date", "Paper?": "paper"}, kinds={"breach_date": "datetime",
                                                                                    "paper": "boolean"},
                          date_formats={"breach_date": "mdy_slash"})
    (tmp_path / "rows.csv").write_text("Breach Date,Paper?\n10/16/2009,yes\n,NA\n2009-10-16,no\n")
    with pytest.raises(RequestFileError, match=r"rows.csv:4: column 'Breach Date': '2009-10-16' is not a date as "
                                               r"MM/DD/YYYY; send it empty"):
        request_from_file(tmp_path / "rows.csv", lambda: (inputs, columns))
    (tmp_path / "rows.csv").write_text("Breach Date,Paper?\n10/16/2009,maybe\n")
    with pytest.raises(RequestFileError, match=r"rows.csv:2: column 'Paper\?': 'maybe' is not a yes/no value"):
        request_from_file(tmp_path / "rows.csv", lambda: (inputs, columns))


def test_a_served_date_or_boolean_cell_its_column_does_not_read_is_told_apart_from_a_missing_one():
    """Training reads an unreadable cell as missing; a request that sends one ("garbage", a 13th month,
    the other date order, "maybe") means something else, and the data plane refuses it."""
    from serving.codec.columns import unreadable

    for cell in ("garbage", "03/05/2014", "2014-13-45", "2014-02-29", "2014-03-05 25:00"):
        assert unreadable(cell, "datetime", "iso"), cell
    for cell in ("", "NA", None, "2016-02-29", "2016-02-29T12:00", "2014-03-05 23:59"):
        assert not unreadable(cell, "datetime", "iso"), cell
    assert unreadable("13/01/2014", "datetime", "mdy_slash") and not unreadable("02/29/2016", "datetime", "mdy_slash")
    assert unreadable("maybe", "boolean") and not any(unreadable(c, "boolean") for c in ("Yes", "n", "FALSE", "NA"))
    assert not unreadable("anything", "string") and not unreadable(1.5e9, "datetime", "unix")


def test_grpc_requests_take_json_values_by_the_rest_codecs_rules():
    """`mlops predict --grpc rows.json` printed raw TypeError/ValueError for a null and a word in a
    number column; it now converts as REST does: null is missing, a bad value is one line, exit 2."""
    import math

    import pytest

    from serving.client import RequestFileError, _grpc_array

    inputs = {"height": {"dtype": "DT_FLOAT", "tensorShape": {"dim": [{"size": "-1"}]}, "name": "h:0"},
              "note": {"dtype": "DT_STRING", "tensor_shape": {"dim": [{"size": "-1"}]}, "name": "n:0"}}
    assert math.isnan(_grpc_array("height", [None, 1.5], inputs)[0])
    assert _grpc_array("age", [3, None], {"age": {"dtype": "DT_DOUBLE"}}).dtype == "float64"  # a dtype alone
    assert _grpc_array("note", ["a", None, {"b64": "Yg=="}], inputs).tolist() == [b"a", b"", b"b"]
    with pytest.raises(RequestFileError, match="JSON Value: \"high\" Type: String is not of expected type: float"):
        _grpc_array("height", ["high"], inputs)
    with pytest.raises(RequestFileError, match="the model has no input 'weight'; its inputs: height, note"):
        _grpc_array("weight", [1.0], inputs)


def test_a_tab_separated_table_is_read_as_rows_and_parquet_is_named(tmp_path):
    """A probe's rows.tsv was parsed as JSON ('not JSON (Expecting value ...)')."""
    import pytest

    from serving.client import RequestFileError, request_from_file
    from serving.codec.columns import ColumnNames

    inputs = {"state": {"dtype": "DT_STRING"}, "amount": {"dtype": "DT_FLOAT"}}
    (tmp_path / "rows.tsv").write_text("State\tamount\nCA\t1.5\n")
    body, _ = request_from_file(tmp_path / "rows.tsv", lambda: (inputs, ColumnNames({"State": "state"})))
    assert body == {"instances": [{"state": "CA", "amount": 1.5}]}
    (tmp_path / "rows.parquet").write_bytes(b"PAR1")
    with pytest.raises(RequestFileError, match=r"rows.parquet: give rows as a delimited table \(.csv, .tsv\) or JSON"):
        request_from_file(tmp_path / "rows.parquet", lambda: (inputs, ColumnNames()))
