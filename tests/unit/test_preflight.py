"""CSV checks that run before any pipeline: each bad input is one line naming file and column."""
from pathlib import Path

import pytest

from components.tasks import get_task
from pipelines.inputs.preflight import InputDataError, profile_csv
from tests.helpers import write_transactions_csv


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "data.csv"
    path.write_text(text)
    return path


def _rows(header: str, rows: list) -> str:
    return header + "\n" + "\n".join(rows) + "\n"


def test_profile_of_mixed_columns(tmp_path):
    path = write_transactions_csv(tmp_path / "t.csv")
    profile = profile_csv(path, [("is_fraud", get_task("binary"))])
    assert profile.rows == 240
    assert profile.numeric == ("amount", "age_days", "risk_score")
    assert profile.strings == ("segment",)
    assert set(profile.targets["is_fraud"].values) == {"0", "1"}
    assert 0.5 <= profile.targets["is_fraud"].majority_share < 1


def test_regression_profile_has_label_spread(tmp_path):
    path = _csv(tmp_path, _rows("x,y", [f"{i},{2 * i}" for i in range(30)]))
    profile = profile_csv(path, [("y", get_task("regression"))])
    assert profile.targets["y"].std == pytest.approx(2 * ((30 ** 2 - 1) / 12) ** 0.5)  # population std of 0, 2, .., 58


@pytest.mark.parametrize("text, task, label, message", [
    ("", "binary", "y", "the CSV is empty"),
    ("x,y\n", "binary", "y", "header but no data rows"),
    (_rows("x,y", ["1,0"] * 5), "binary", "y", "5 data rows; at least 20"),
    (_rows("x,y", ["1,0", "2,1"] * 15), "binary", "target", "label column 'target' not found; columns: x, y"),
    (_rows("x,y", ["1,0", "2,1"] * 14 + ["abc,1", "3,0"]), "binary", "y",
     "column 'x' is numeric but line 30 holds 'abc'"),
    (_rows("x,y", ["1,0", "2,"] * 15), "binary", "y", "15 data rows with a label; at least 20"),
    (_rows("x,y", ["1,0", "2,", "3,NA"] * 10), "binary", "y",
     "label column 'y' is empty on 20 of 30 rows (first on line 3); more than half have no label"),
    (_rows("x,y", ["1,0", "2,1", "3,2"] * 10), "binary", "y", "exactly 2 label values in 'y', found 3"),
    (_rows("q,y", ["a,0", "b,1", "c,0"] * 73), "binary", "y",  # copies of a row share a split
     "its 219 rows hold 3 distinct ones; at least 20 are needed to train and evaluate"),
    (_rows("x,y", ["1,0", "2,0"] * 15), "multiclass", "y", "needs at least 2 classes in 'y'"),
    (_rows("x,y", ["1,a", "2,b"] * 15), "regression", "y", "needs a numeric label; 'y' holds text"),
    (_rows("x;y", ["1;0", "2;1;5"] * 15), "binary", "y", "line 3 has 3 fields, the header has 2"),
    (_rows("x,y", ["1,0", "2,1"] * 15), "binary", "x,y", "label column 'x,y' not found"),
    (_rows("x,y", ["1,0", "2,1,5"] * 15), "binary", "y", "line 3 has 3 fields, the header has 2"),
    (_rows("x,y", ["1,0"] * 10 + ['"2 and more,1'] + ["3,0", "4,1"] * 10), "binary", "y",  # an unclosed quote
     "line 12 has a value whose quote runs on to line "),
])
def test_bad_input_is_named(tmp_path, text, task, label, message):
    with pytest.raises(InputDataError) as err:
        profile_csv(_csv(tmp_path, text), [(label, get_task(task))])
    assert message in str(err.value)
    assert str(tmp_path) in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(InputDataError, match="data file not found: .*nope.csv"):
        profile_csv(tmp_path / "nope.csv", [("y", get_task("binary"))])


def test_curated_schema_types_win(tmp_path):
    # Mostly text, so inference would call it a string column; the curated schema says numeric.
    path = _csv(tmp_path, _rows("x,y", ["a,0", "b,1"] * 15))
    with pytest.raises(InputDataError, match="column 'x' is numeric but line 2 holds 'a'"):
        profile_csv(path, [("y", get_task("binary"))], schema_kinds={"x": "numeric", "y": "numeric"})


def test_multitask_targets_are_each_checked_and_excluded_from_features(tmp_path):
    path = _csv(tmp_path, _rows("x,z,age,gender", [f"{i},{i % 3},{'young' if i % 2 else 'old'},{i % 2}"
                                                   for i in range(30)]))
    profile = profile_csv(path, [("age", get_task("multiclass")), ("gender", get_task("binary"))])
    assert profile.numeric == ("x", "z") and set(profile.targets) == {"age", "gender"}
    with pytest.raises(InputDataError, match="label column 'sex' not found"):
        profile_csv(path, [("age", get_task("multiclass")), ("sex", get_task("binary"))])


def test_any_header_gets_a_feature_key_and_the_label_may_be_named_either_way(tmp_path):
    path = _csv(tmp_path, _rows("Mean Radius,Sepal.Length,2nd gear,Malignant?", [f"{i},{i % 7},{i % 3},{i % 2}"
                                                                               for i in range(40)]))
    profile = profile_csv(path, [("Malignant?", get_task("binary"))])
    assert profile.column_map.keys == ("mean_radius", "sepal_length", "col_2nd_gear", "malignant")
    assert set(profile.targets) == {"malignant"} and profile.numeric == ("mean_radius", "sepal_length", "col_2nd_gear")
    assert profile_csv(path, [("malignant", get_task("binary"))]).targets["malignant"].values == ("0", "1")


def test_missing_tokens_booleans_dates_identifiers_and_constants(tmp_path):
    missing = {11: "\\N", 13: "#N/A"}  # besides R's NA: a MySQL/PostgreSQL text export's, a spreadsheet's
    rows = [f"id{i},{missing.get(i, 'NA') if i % 5 == 0 or i in missing else i * 1.5},"
            f"{'yes' if i % 2 else 'No'},2021-0{1 + i % 9}-1{i % 9},"
            f"same,{'?' if i % 7 == 0 else 'a' if i % 3 else 'b'},{i % 2}" for i in range(40)]
    path = _csv(tmp_path, _rows("Order Id,amount,Prime,Order Date,Shop,Channel,label", rows))
    profile = profile_csv(path, [("label", get_task("binary"))])
    roles = {c.key: (c.kind.kind, c.role) for c in profile.columns}
    assert roles == {"order_id": ("string", "identifier"), "amount": ("numeric", "feature"),
                     "prime": ("boolean", "feature"), "order_date": ("datetime", "feature"),
                     "shop": ("string", "constant"), "channel": ("string", "feature"), "label": ("integer", "label")}
    assert profile.strings == ("prime", "channel") and profile.slice_features == ("prime", "channel")


@pytest.mark.parametrize("values, kind, task", [
    (["yes", "no"], "boolean", "binary"), (["a", "b", "c"], "string", "multiclass"),
    (["1", "2", "3", "4"], "integer", "multiclass"), ([str(i * 0.37) for i in range(40)], "numeric", "regression"),
])
def test_the_task_is_inferred_from_the_label(tmp_path, values, kind, task):
    path = _csv(tmp_path, _rows("x,y", [f"{i},{values[i % len(values)]}" for i in range(40)]))
    from pipelines.inputs.preflight import profile_source
    from pipelines.inputs.tables import open_table

    profile = profile_source(open_table(path), ["y"])
    assert (profile.targets["y"].kind, profile.task) == (kind, task), profile.task_reason


def test_slices_are_the_named_categories_else_the_few_with_the_fewest_values(tmp_path):
    """TFMA slices each slice column by each of its values: by default only a few, the user names others."""
    header = "Price,Shape,Colour Name,Size,Grade,Cut,Rooms,Kind,Street Name,Sold"
    rows = [f"{i * 1.7},{'ab'[i % 2]},{'rgbyk'[i % 5]},{'sml'[i % 3]},{'abcdef'[i % 6]},{'pq'[i % 2]},{i % 4},"
            f"{'wxyz'[i % 4]},street {i % 30},{i % 2}" for i in range(60)]
    profile = profile_csv(_csv(tmp_path, _rows(header, rows)), [("Sold", get_task("binary"))])
    assert profile.slice_features == ("shape", "colour_name", "size", "grade", "cut", "kind")  # street: 30 values
    assert profile.slices() == ("shape", "cut", "size", "kind")  # fewest values first, then column order
    assert profile.slices(["Colour Name", "rooms", "colour_name"]) == ("colour_name", "rooms")
    assert profile.slices([]) == ()
    for named, message in ((["Price"], "--slice column 'Price' has more than 20 distinct values or is continuous"),
                           (["Street Name"], "--slice column 'Street Name' has more than 20"),
                           (["Sold"], "--slice column 'Sold' is not a feature (label)"),
                           (["Colour"], "--slice column 'Colour' not found; columns: Price, Shape")):
        with pytest.raises(InputDataError, match=message.replace("(", r"\(").replace(")", r"\)")):
            profile.slices(named)


def _text_table(tmp_path: Path) -> Path:
    import random

    rng = random.Random(0)
    words = "the order came late and the box was broken but support helped us quickly".split()
    rows = []
    for i in range(60):
        review = " ".join(rng.choice(words) for _ in range(rng.randint(4, 14)))
        rows.append(f"{review},ORD-{1000 + i},{'red' if i % 3 else 'blue'},{'good day' if i % 2 else 'bad day'},"
                    f"{i % 7},{i % 2}")
    return _csv(tmp_path, _rows("Review Text,order_code,colour,mood,shelf,label", rows))


def test_text_is_told_from_identifiers_and_categories(tmp_path):
    profile = profile_csv(_text_table(tmp_path), [("label", get_task("binary"))])
    roles = {c.key: (c.kind.kind, c.role) for c in profile.columns}
    assert roles["review_text"] == ("text", "feature")
    assert roles["order_code"] == ("string", "identifier")  # one token per row stays an identifier
    assert roles["colour"] == ("string", "feature") and roles["mood"] == ("string", "feature")  # few values
    assert 8 <= profile.column("review_text").kind.text_length <= 14
    assert "review_text" not in profile.strings and "review_text" not in profile.slice_features


def test_text_flag_forces_the_kind_and_names_an_unknown_column(tmp_path):
    from pipelines.inputs.preflight import ProfileOptions, profile_source
    from pipelines.inputs.tables import open_table

    path = _text_table(tmp_path)
    forced = profile_source(open_table(path), ["label"], "binary", ProfileOptions(text=("order_code", "mood")))
    kinds = {c.key: (c.kind.kind, c.role) for c in forced.columns}
    assert kinds["order_code"] == ("text", "feature") and kinds["mood"] == ("text", "feature")
    assert forced.column("mood").kind.text_length == 8  # the smallest window
    with pytest.raises(InputDataError, match="--text.*'comments'"):
        profile_source(open_table(path), ["label"], "binary", ProfileOptions(text=("comments",)))


def test_a_counter_column_of_row_numbers_is_left_out_and_a_feature_of_the_same_values_is_not(tmp_path):
    """A probe's fastfood table, sorted by restaurant, began with 'Number' 0..514: kept as a feature,
    it told the restaurant by the row's place (accuracy 0.79 -> 0.93)."""
    from pipelines.inputs.preflight import ProfileOptions, profile_source
    from pipelines.inputs.tables import open_table

    rows = [f"{i},{i + 1},{(i * 7) % 40},{i * 0.5},{'ab'[i // 20]}" for i in range(40)]
    path = _csv(tmp_path, _rows("Number,day,No.,x,label", rows))
    roles = {c.key: (c.role, c.reason) for c in profile_source(open_table(path), ["label"]).columns}
    assert roles["number"] == ("identifier", "a row number (0 to 39, once each)")
    assert roles["no"] == ("identifier", "a row number (0 to 39, once each)")  # shuffled: still one each
    assert roles["day"] == ("feature", "") and roles["x"] == ("feature", "")
    kept = profile_source(open_table(path), ["label"], None, ProfileOptions(features=("Number", "x")))
    assert {c.key: c.role for c in kept.columns}["number"] == "feature"  # the user's word


def test_a_column_of_codes_can_be_dropped_or_read_as_categories(tmp_path):
    """NACE codes 'A', '01', '01.1': mostly numbers, so refused as a numeric column with words, and
    --drop, --features and --categorical all failed with that same error."""
    from pipelines.inputs.preflight import ProfileOptions, profile_source
    from pipelines.inputs.tables import open_table

    codes = ["A", "01", "01.1", "01.11", "01.12", "02", "02.1", "B", "03", "03.1"]
    path = _csv(tmp_path, _rows("Code,size,label", [f"{codes[i % 10]},{i * 1.5},{i % 2}" for i in range(40)]))
    with pytest.raises(InputDataError, match=r"column 'Code' is numeric but line 2 holds 'A' \(8 non-numeric "
                                             r"value\(s\)\); .*--categorical 'Code'.*--drop 'Code'"):
        profile_source(open_table(path), ["label"])
    for options, role in ((ProfileOptions(drop=("Code",)), "dropped"), (ProfileOptions(features=("size",)), "dropped"),
                          (ProfileOptions(categorical=("Code",)), "feature")):
        columns = {c.key: c for c in profile_source(open_table(path), ["label"], None, options).columns}
        assert (columns["code"].kind.kind, columns["code"].role) == ("string", role)


def test_a_column_of_dates_with_a_few_other_cells_is_named_not_read_as_words_or_forced_to_iso(tmp_path):
    """Breach dates, MM/DD/YYYY with some ranges ('09/20/2011 - 10/28/2011'): read as text; forced
    with --datetime they were recorded as YYYY-MM-DD, none read in training, and the served model
    answered NaN for a date."""
    from pipelines.inputs.preflight import ProfileOptions, profile_source
    from pipelines.inputs.tables import open_table

    dates = [f"{1 + i % 12:02d}/{1 + i % 28:02d}/2011" if i % 8 else f"0{1 + i % 9}/01/2011 - 0{1 + i % 9}/20/2011"
             for i in range(40)]
    path = _csv(tmp_path, _rows("Date of Breach,size,label", [f"{d},{i * 1.5},{i % 2}" for i, d in enumerate(dates)]))
    for options in (ProfileOptions(), ProfileOptions(datetime=("Date of Breach",))):
        with pytest.raises(InputDataError, match=r"column 'Date of Breach' holds dates \(MM/DD/YYYY\) but line 2 "
                                                 r"holds '01/01/2011 - 01/20/2011' \(5 of 40 sampled values not "
                                                 r"dates\); leave such a cell empty .*--text .*--drop"):
            profile_source(open_table(path), ["label"], None, options)
    text = profile_source(open_table(path), ["label"], None, ProfileOptions(text=("Date of Breach",)))
    assert text.column("date_of_breach").kind.kind == "text"
    words = _csv(tmp_path, _rows("When,size,label", [f"soon,{i},{i % 2}" for i in range(40)]))
    with pytest.raises(InputDataError, match=r"--datetime 'When': line 2 holds 'soon', not a date as YYYY-MM-DD, "):
        profile_source(open_table(words), ["label"], None, ProfileOptions(datetime=("When",)))


def test_dates_with_two_digit_years_are_named_not_read_as_words(tmp_path):
    """A probe's 'timestamp' of '8/6/20 18:57' was read as text ('up to 8 words')."""
    from pipelines.inputs.preflight import ProfileOptions, profile_source
    from pipelines.inputs.tables import open_table

    path = _csv(tmp_path, _rows("timestamp,size,label", [f"{1 + i % 12}/{1 + i % 28}/20 1{i % 10}:{10 + i},"
                                                         f"{i * 1.5},{i % 2}" for i in range(40)]))
    with pytest.raises(InputDataError, match=r"column 'timestamp' holds dates with two-digit years \('1/1/20 10:10'\)"
                                             r": which century is not ours to guess; .*--drop 'timestamp'"):
        profile_source(open_table(path), ["label"])
    dropped = profile_source(open_table(path), ["label"], None, ProfileOptions(drop=("timestamp",)))
    assert {c.key: c.role for c in dropped.columns}["timestamp"] == "dropped"


def test_numbers_written_with_separators_are_named_not_read_as_categories(tmp_path):
    """A probe's Sacramento written with decimal commas (';' between cells) lost latitude and longitude
    as 'identifier-like' and read baths '1,5' as a category; '1,167' square feet (thousands) became a
    category and the model fell below its ridge baseline; a price of '59,222' was read as 602 classes."""
    from pipelines.inputs.preflight import ProfileOptions, profile_source
    from pipelines.inputs.tables import open_table

    euro = _csv(tmp_path, _rows("baths;lat;beds;price", [f"{1 + i % 3},5;38,{600 + i};{i % 4};{1000 + i}"
                                                         for i in range(40)]))
    with pytest.raises(InputDataError, match=r"columns 'baths', 'lat' hold numbers written with separators \(line 2: "
                                             r"'1,5' in 'baths'\); this reads numbers with a '\.' decimal point and no "
                                             r"thousands separators: write them so, or .*--categorical COL"):
        profile_source(open_table(euro, ";"), ["price"])
    thousands = tmp_path / "thousands.csv"
    thousands.write_text(_rows("sqft,price", [f'"{950 + 40 * i:,}",{100 + i}' for i in range(40)]))
    with pytest.raises(InputDataError, match=r"column 'sqft' holds numbers written with separators \(line 4: "
                                             r"'1,030' in 'sqft'\); .*: write it so"):
        profile_source(open_table(thousands), ["price"])
    codes = profile_source(open_table(thousands), ["price"], None, ProfileOptions(categorical=("sqft",)))
    assert {c.key: c.kind.kind for c in codes.columns}["sqft"] == "string"  # the user's word
    label = tmp_path / "label.csv"
    label.write_text(_rows("size,price", [f'{i},"{59000 + 37 * i:,}"' for i in range(40)]))
    with pytest.raises(InputDataError) as err:
        profile_source(open_table(label), ["price"])
    assert "column 'price' holds numbers written with separators (line 2: '59,000'" in str(err.value)
    assert "--categorical" not in str(err.value)  # a label has no such way out


@pytest.mark.parametrize("name", ["uid", "UUID", "pk", "key", "Customer_ID"])
def test_a_unique_integer_named_as_a_rows_identifier_is_left_out(tmp_path, name):
    """A survey's 'uid' 1..n was kept as a feature; a unique 'score' of the same values is not an identifier."""
    rows = [f"{i * 7 + 3},{i * 7 + 3},{(i * 37) % 11},{i % 2}" for i in range(40)]
    roles = {c.key: c.role for c in profile_csv(_csv(tmp_path, _rows(f"{name},score,x,label", rows)),
                                                [("label", get_task("binary"))]).columns}
    assert roles[name.lower()] == "identifier" and roles["score"] == "feature", roles
