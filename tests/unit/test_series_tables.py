"""A user's series before any pipeline: times in every format read (dates, years, YYYY-MM,
quarters, R's decimal years, Unix seconds) on a regular frequency, inferred; duplicates, gaps,
missing values, short series and bad options refused in one line naming the file, line or series;
few gaps filled; the staged split by time; and a history read back for `mlops predict`."""
import csv
from datetime import date, timedelta
from pathlib import Path

import pytest

from pipelines.inputs.column_kinds import InputDataError
from pipelines.inputs.series_tables import ForecastOptions, holdout_split, profile_series, stage_series, window_counts
from pipelines.inputs.tables import open_table
from serving.codec.periods import PeriodError, SeriesInfo, TimeAxis, infer_axis
from serving.forecast_client import HistoryError, read_history


def _write(path: Path, header, rows) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _profile(path: Path, horizon: int = 3, **options):
    return profile_series(open_table(path), "y", ForecastOptions(options.pop("time", "t"), horizon, **options))


def _monthly(n: int, start_year: int = 2000):
    return [f"{start_year + m // 12}-{m % 12 + 1:02d}-01" for m in range(n)]


@pytest.mark.parametrize("cells, fmt, frequency", [
    (["2020-01-01", "2020-01-02", "2020-01-03", "2020-01-05"], "iso", "daily"),
    (["2020/01/06", "2020/01/13", "2020/01/20"], "ymd_slash", "weekly"),
    (["01/31/2020", "02/29/2020", "03/31/2020"], "mdy_slash", "monthly"),
    (["2020-01-01", "2020-04-01", "2020-07-01"], "iso", "quarterly"),
    (["1990", "1991", "1993"], "year", "yearly"),
    (["1949-01", "1949-02", "1949-03"], "year_month", "monthly"),
    (["1990 Q1", "1990 Q2", "1990 Q3"], "quarter", "quarterly"),
    (["1949.0", "1949.0833333333", "1949.1666666667"], "decimal_year", "monthly"),
    (["1960.0", "1960.25", "1960.5"], "decimal_year", "quarterly"),
    (["1577836800", "1577923200", "1578009600"], "unix", "daily"),
])
def test_each_time_format_reads_on_its_frequency(cells, fmt, frequency):
    axis = infer_axis([cells])
    assert (axis.format, axis.frequency) == (fmt, frequency)
    periods = [axis.period(c) for c in cells]
    assert periods == sorted(periods) and axis.label(periods[0]).replace(".0", "") in (cells[0], "1949", "1960")


@pytest.mark.parametrize("cells, fmt, frequency, following", [
    (["05.02.2007", "12.02.2007", "19.02.2007"], "dmy_dot", "weekly", "26.02.2007"),
    (["20240130", "20240131", "20240201"], "ymd_compact", "daily", "20240202"),
    (["196011", "196012", "196101"], "year_month_compact", "monthly", "196102"),
    (["1960.10", "1960.11", "1960.12"], "year_month_dot", "monthly", "1961.01"),  # not a decimal year's 0.01 steps
    (["1960 Jan", "1960 Feb", "1960 Mar"], "year_mon", "monthly", "1960 Apr"),  # tsibble's yearmonth
    (["Nov 1960", "December 1960", "Jan. 1961"], "mon_year", "monthly", "Feb 1961"),
    (["1991 W51", "1991 W52", "1992-W01"], "iso_week", "weekly", "1992 W02"),  # tsibble's yearweek
    (["1998Q2", "1998Q3", "1998Q4"], "quarter_compact", "quarterly", "1999Q1"),  # pandas' Period
    (["1998-Q2", "1998-Q3", "1998-Q4"], "quarter_dash", "quarterly", "1999-Q1"),  # a probe got '2017 Q1' for these
    (["2020-W52", "2020-W53", "2021-W01"], "iso_week_dash", "weekly", "2021-W02"),
    (["1982M10", "1982M11", "1982M12"], "year_m_month", "monthly", "1983M01"),  # Eurostat; a probe got 'not a time'
    (["1982m10", "1982m11", "1982m12"], "year_lower_m_month", "monthly", "1983m1"),  # Stata's %tm
    (["10/1982", "11/1982", "12/1982"], "month_year_slash", "monthly", "01/1983"),
    (["10.1982", "11.1982", "12.1982"], "month_year_dot", "monthly", "01.1983"),
])
def test_exports_times_read_and_are_written_back_in_their_style(cells, fmt, frequency, following):
    axis = infer_axis([cells])
    assert (axis.format, axis.frequency) == (fmt, frequency)
    periods = [axis.period(c) for c in cells]
    assert periods == list(range(periods[0], periods[0] + 3)) and axis.label(periods[0]) == cells[0]
    assert axis.label(periods[-1] + 1) == following


def test_day_first_dates_read_as_the_regular_series_they_are():
    """01/02/1960, 01/03/1960, ...: month first they are days with gaps (and 01/13/1960 does not
    read), day first a regular monthly series; with a day above 12 only day first reads."""
    months = [f"01/{m % 12 + 1:02d}/{1960 + m // 12}" for m in range(24)]
    axis = infer_axis([months])
    assert (axis.format, axis.frequency) == ("dmy_slash", "monthly") and axis.iso_date(axis.period(months[1])) == \
        "1960-02-01"
    weekly = infer_axis([["05/02/2007", "12/02/2007", "19/02/2007"]])
    assert (weekly.format, weekly.frequency) == ("dmy_slash", "weekly")
    assert infer_axis([["01/31/1960", "02/29/1960", "03/31/1960"]]).format == "mdy_slash"  # month first still first
    for cells in (["Jan-60", "Feb-60"], ["01/60", "02/60"], ["31/01/60", "29/02/60"]):  # the refusal says why
        with pytest.raises(PeriodError, match=f"^'{cells[0]}' has a two-digit year: which century is not ours to "
                                              "guess; write four-digit years$"):
            infer_axis([cells])


def test_a_series_whose_step_changes_is_named_as_such_not_as_a_duplicate_time(tmp_path):
    """Monthly to 2012, then weekly: a probe got "'2013-01-14' again (line 938 has the same time)",
    though line 938 held 2013-01-07."""
    times = [f"{2010 + m // 12}-{m % 12 + 1:02d}-01" for m in range(36)]
    times += ["2013-01-07", "2013-01-14", "2013-01-21"]
    path = _write(tmp_path / "s.csv", ["t", "y"], [[t, i] for i, t in enumerate(times)])
    with pytest.raises(InputDataError, match=r"line 39: '2013-01-14' falls in the same monthly step as line "
                                             r"38 \('2013-01-07'\): the series reads as monthly, and its times"):
        _profile(path)


def test_a_period_is_written_back_as_the_column_writes_it():
    assert TimeAxis("iso", "monthly", 0).label(2020 * 12 + 1) == "2020-02-29"  # month ends stay month ends
    assert TimeAxis("decimal_year", "monthly").label(1961 * 12 + 1) == "1961.083333"
    assert TimeAxis("quarter", "quarterly").label(1990 * 4 + 2) == "1990 Q3"
    weekly = infer_axis([["2024-01-01", "2024-01-08"]])
    assert weekly.label(weekly.period("2024-01-08") + 1) == "2024-01-15"


@pytest.mark.parametrize("cells, following", [
    (["2016-03-01", "2016-06-01", "2016-09-01", "2016-12-01"], "2017-03-01"),  # quarters dated by their last month
    (["2016-02-15", "2016-05-15", "2016-08-15"], "2016-11-15"),
    (["03/31/2016", "06/30/2016", "09/30/2016"], "12/31/2016"),  # quarter ends
    (["2014-06-30", "2015-06-30", "2016-06-30"], "2017-06-30"),  # years dated mid-year (fiscal years)
])
def test_quarters_and_years_keep_the_month_they_are_dated_by(cells, following):
    """A probe's quarterly prison counts dated 2005-03-01 ... 2016-12-01 were forecast from
    2017-01-01, and a gap at 2014-06-01 was named as 2014-04-01."""
    axis = infer_axis([cells])
    periods = [axis.period(c) for c in cells]
    assert [axis.label(p) for p in periods] == cells and axis.label(periods[-1] + 1) == following
    assert TimeAxis(**SeriesInfo("t", "y", (), axis, 4, 2).as_json()["axis"]) == axis  # /metadata carries it


@pytest.mark.parametrize("cells, message", [
    (["2020-01-01", "2020-01-03", "2020-01-05"], "a typical step of 2 days is not daily"),
    (["soon", "later"], "'soon' is not a time this reads"),
    (["1949.0", "1949.5", "1950.0"], "a step of 0.5 years is not monthly, quarterly or yearly"),
])
def test_an_irregular_or_unreadable_time_is_refused(cells, message):
    with pytest.raises(PeriodError, match=message):
        infer_axis([cells])


def test_one_monthly_series_gets_its_lookback_and_split_by_time(tmp_path):
    path = _write(tmp_path / "s.csv", ["t", "y"], [[t, i] for i, t in enumerate(_monthly(60))][::-1])  # any order
    profile = _profile(path, horizon=6)
    assert (profile.axis.frequency, profile.lookback, len(profile.series)) == ("monthly", 24, 1)
    assert profile.lookback_reason == "max(2 x season 12, 2 x horizon 6, 3)"
    stage_series(profile, tmp_path / "staged")
    split = {name: [float(r["value"]) for r in csv.DictReader((tmp_path / "staged" / name / "series.csv").open())]
             for name in ("train", "valid", "eval")}
    assert split["eval"] == [float(v) for v in range(30, 60)]  # lookback 24 + the holdout 6
    # 4 windows whose targets end a horizon earlier: one, and 3 more (5% of 60 points) a step earlier each
    assert split["valid"] == [float(v) for v in range(21, 54)]
    assert split["train"] == [float(v) for v in range(45)]  # the points before valid's targets
    assert holdout_split(profile)[0][1] == tuple(float(v) for v in range(54, 60))
    window = profile.lookback + profile.horizon
    assert window_counts([60], 24, 6) == (len(split["train"]) - window + 1, len(split["valid"]) - window + 1)


def test_window_counts_are_the_windows_each_staged_split_holds(tmp_path):
    lengths = {"a": 400, "b": 120, "c": 80}
    rows = [[key, day.isoformat(), i % 7] for key, n in lengths.items()
            for i, day in enumerate(date(2020, 1, 1) + timedelta(days=d) for d in range(n))]
    profile = _profile(_write(tmp_path / "s.csv", ["shop", "t", "y"], rows), horizon=14, series_id=("shop",))
    stage_series(profile, tmp_path / "staged")
    window = profile.lookback + profile.horizon
    counted = []
    for split in ("train", "valid"):
        staged = list(csv.DictReader((tmp_path / "staged" / split / "series.csv").open()))
        counted.append(sum(max(0, sum(r["series"] == key for r in staged) - window + 1)
                           for key in {r["series"] for r in staged}))
    assert window_counts(list(lengths.values()), profile.lookback, profile.horizon) == tuple(counted)


def test_validation_takes_toward_30_windows_from_few_long_series_only():
    from pipelines.inputs.series_tables import validation_windows

    assert validation_windows([7305], 56, 28) == [30]  # one long daily series: 30, from 0.4% of it
    assert validation_windows([730, 730], 28, 14) == [15, 15]
    assert validation_windows([400] * 4, 28, 14) == [8] * 4  # 32: each series adds as many as the others
    assert validation_windows([144], 24, 12) == [8]  # a monthly series adds 7 (5% of its points), no more
    assert validation_windows([144] * 100, 24, 12) == [1] * 100  # 100 series: one window each is enough
    assert validation_windows([62], 24, 12) == [2]  # the train split keeps its room beyond one window
    assert validation_windows([60], 24, 12) == [1]
    # series too short for their share leave it to the longer ones: 30 in all
    uneven = validation_windows([400, 400, 120, 80], 28, 14)
    assert uneven == [9, 9, 7, 5] and sum(uneven) == 30


def test_a_short_series_cuts_the_lookback_then_is_refused_by_name(tmp_path):
    rows = [["a", t, 1.0] for t in _monthly(40)] + [["b", t, 2.0] for t in _monthly(35)]
    profile = _profile(_write(tmp_path / "s.csv", ["shop", "t", "y"], rows), horizon=6, series_id=("shop",))
    assert profile.lookback == 35 - 18 and "shortest series (35 points)" in profile.lookback_reason
    rows += [["c", t, 3.0] for t in _monthly(19)]
    too_short = (r"c has 19 monthly points; a forecast of 6 needs at least 20 \(--lookback 2 \+ 3 x horizon.*give a "
                 r"shorter --lookback or --horizon")
    with pytest.raises(InputDataError, match=too_short):
        _profile(_write(tmp_path / "s.csv", ["shop", "t", "y"], rows), horizon=6, series_id=("shop",), lookback=2)


def test_a_duplicate_time_is_refused_naming_both_lines_and_the_series(tmp_path):
    rows = [["a", t, 1.0] for t in _monthly(40)] + [["b", t, 2.0] for t in _monthly(40)]
    rows.append(["b", "2000-05-01", 9.0])
    path = _write(tmp_path / "s.csv", ["shop", "t", "y"], rows)
    with pytest.raises(InputDataError, match=r"s.csv: series b: line 82: '2000-05-01' again \(line 46 has") as keyed:
        _profile(path, series_id=("shop",))
    assert "--series-id" not in str(keyed.value)
    with pytest.raises(InputDataError, match=r"line 42: '2000-01-01' again .* per time; a long table of several "
                                             r"series needs --series-id naming their ID column\(s\)$"):
        _profile(path)  # the shops' rows read as one series


def test_few_gaps_and_missing_values_are_filled_and_named_many_are_refused(tmp_path):
    times, values = _monthly(60), [float(i) for i in range(60)]
    rows = [[t, v] for t, v in zip(times, values) if t not in ("2001-03-01", "2002-01-01")]
    rows[10][1] = "NA"
    profile = _profile(_write(tmp_path / "s.csv", ["t", "y"], rows))
    assert profile.filled == 3 and profile.first_gap.endswith("2000-11-01 missing")
    assert profile.series[0].values == tuple(values)  # a straight line interpolates exactly
    assert profile.trimmed == 0
    edged = [["1999-11-01", "NA"], ["1999-12-01", ""], *rows, [_monthly(61)[-1], "NA"]]  # no value yet, or any more
    trimmed = _profile(_write(tmp_path / "s.csv", ["t", "y"], edged))
    assert trimmed.trimmed == 3 and trimmed.series[0].values == tuple(values) and trimmed.series[0].start == \
        profile.series[0].start
    sparse = [[t, v] for i, (t, v) in enumerate(zip(times, values)) if i % 5]
    with pytest.raises(InputDataError, match=r"2000-01-01 missing.*12 of 61 monthly points .*more than 10%"):
        _profile(_write(tmp_path / "s.csv", ["t", "y"], [["1999-12-01", 0.0], *sparse]))


@pytest.mark.parametrize("options, message", [
    ({"time": "when"}, "--time column 'when' not found; columns: t, y"),
    ({"horizon": 0}, "--horizon 0: forecast at least 1 step"),
    ({"lookback": 1}, "--lookback 1: a window needs at least 2 points"),
    ({"series_id": ("y",)}, "--time, --label, --series-id and --covariates must name different columns"),
])
def test_bad_forecast_options_are_one_line(tmp_path, options, message):
    path = _write(tmp_path / "s.csv", ["t", "y"], [[t, 1.0] for t in _monthly(60)])
    with pytest.raises(InputDataError, match=message):
        _profile(path, **{"horizon": 3, **options})


def test_a_label_that_is_not_a_number_is_named_by_line(tmp_path):
    rows = [[t, 1.0] for t in _monthly(60)]
    rows[7][1] = "lots"
    with pytest.raises(InputDataError, match=r"line 9: --label column 'y' holds 'lots', not a number"):
        _profile(_write(tmp_path / "s.csv", ["t", "y"], rows))
    rows[7][1] = "0,3424"  # a decimal comma, as a spreadsheet in another locale writes it
    with pytest.raises(InputDataError, match=r"line 9: --label column 'y' holds '0,3424', not a number \(this reads "
                                             r"numbers with a '\.' decimal point and no thousands separators\)$"):
        _profile(_write(tmp_path / "s.csv", ["t", "y"], rows))


def test_a_history_csv_becomes_the_last_lookback_points_of_each_series(tmp_path):
    info = SeriesInfo("day", "sales", ("store",), TimeAxis("iso", "daily"), 3, 2)
    start = date(2024, 1, 1)
    rows = [[(start + timedelta(days=d)).isoformat(), s, 10 * s + d] for s in (1, 2) for d in range(5)]
    windows = read_history(_write(tmp_path / "h.csv", ["day", "store", "sales"], rows[::-1]), info)
    assert [(w.key, w.values) for w in windows] == [(("1",), (12.0, 13.0, 14.0)), (("2",), (22.0, 23.0, 24.0))]
    assert info.axis.label(windows[0].last + 1) == "2024-01-06"
    with pytest.raises(HistoryError, match="series 2 has 2 daily points; the model reads the last 3 of each series"):
        read_history(_write(tmp_path / "h.csv", ["day", "store", "sales"], rows[:7]), info)
    del rows[8]  # store 2 lacks 2024-01-04
    with pytest.raises(HistoryError, match="series 2 lacks 2024-01-04"):
        read_history(_write(tmp_path / "h.csv", ["day", "store", "sales"], rows), info)
    empty = [[(start + timedelta(days=d)).isoformat(), 1, "" if d == 1 else d] for d in range(3)]
    with pytest.raises(HistoryError, match=r"series 1 lacks 2024-01-02 \(line 3 has no value; 1 of the last 3 daily "
                                           "points the model reads are missing: fill them, as training filled"):
        read_history(_write(tmp_path / "h.csv", ["day", "store", "sales"], empty), info)  # not 'has 2 points'
    clash = [*rows, [rows[2][0], 1, 999999]]  # store 1's 2024-01-03 twice (line 4 and the last)
    with pytest.raises(HistoryError, match=r"line 11: '2024-01-03' again \(line 4 has the same time in this series\)"):
        read_history(_write(tmp_path / "h.csv", ["day", "store", "sales"], clash), info)


def test_covariates_are_read_filled_staged_and_refused_in_one_line(tmp_path):
    times = _monthly(60)
    rows = [[t, i, i % 2, 100 + i] for i, t in enumerate(times)]
    rows[20][2] = ""  # one gap in a covariate: filled like a value
    path = _write(tmp_path / "s.csv", ["t", "y", "Promo Flag", "price"], rows)
    profile = _profile(path, horizon=6, covariates=("Promo Flag", "price"))
    assert profile.covariates == (("Promo Flag", "promo_flag"), ("price", "price"))
    assert profile.series[0].covariates[1] == tuple(float(100 + i) for i in range(60))
    assert profile.series[0].covariates[0][19:22] == (1.0, 1.0, 1.0)  # between two 1s
    stage_series(profile, tmp_path / "staged")
    staged = list(csv.DictReader((tmp_path / "staged" / "eval" / "series.csv").open()))
    assert list(staged[0]) == ["series", "date", "value", "promo_flag", "price"]
    assert (staged[0]["date"], staged[-1]["date"], float(staged[-1]["price"])) == ("2002-07-01", "2004-12-01", 159.0)
    sparse = [list(r) for r in rows]
    for r in sparse[::5]:
        r[3] = "NA"
    with pytest.raises(InputDataError, match=r"--covariates column 'price' lacks 12 of 60 monthly points"):
        _profile(_write(tmp_path / "s.csv", ["t", "y", "Promo Flag", "price"], sparse), covariates=("price",))
    rows[3][3] = "cheap"
    with pytest.raises(InputDataError, match=r"line 5: --covariates column 'price' holds 'cheap', not a number"):
        _profile(_write(tmp_path / "s.csv", ["t", "y", "Promo Flag", "price"], rows), covariates=("price",))
    with pytest.raises(InputDataError, match="--covariates column 'promo' not found"):
        _profile(path, covariates=("promo",))


def test_a_history_with_covariates_needs_the_future_rows_and_asks_with_them(tmp_path):
    from serving.codec.periods import NEXT_DATE_INPUT
    from serving.forecast_client import request_row

    info = SeriesInfo("day", "sales", (), TimeAxis("iso", "daily"), 3, 2, (("Promo", "promo"),))
    start = date(2024, 1, 1)
    rows = [[(start + timedelta(days=d)).isoformat(), 10 + d if d < 5 else "", d % 2] for d in range(7)]
    window, = read_history(_write(tmp_path / "h.csv", ["day", "sales", "Promo"], rows), info)
    row = request_row(window, info)
    assert row == {"window": [12.0, 13.0, 14.0], NEXT_DATE_INPUT: "2024-01-06", "promo": [0.0, 1.0, 0.0, 1.0, 0.0]}
    assert set(row) == set(info.inputs())
    with pytest.raises(HistoryError, match=r"the series has no row at 2024-01-07 for column 'Promo'; the 2 rows after"):
        read_history(_write(tmp_path / "h.csv", ["day", "sales", "Promo"], rows[:-1]), info)
    rows[-1][2] = ""
    with pytest.raises(HistoryError, match=r"column 'Promo' at 2024-01-07 is '', not a number; the 2 rows after"):
        read_history(_write(tmp_path / "h.csv", ["day", "sales", "Promo"], rows), info)
    assert SeriesInfo.parse(info.as_json()) == info


def test_a_monthly_history_has_no_calendar_input():
    info = SeriesInfo("m", "y", (), TimeAxis("year_month", "monthly"), 24, 12)
    assert set(info.inputs()) == {"window"} and not info.axis.has_calendar


def test_a_history_time_in_another_format_names_the_format_as_users_write_it(tmp_path):
    info = SeriesInfo("day", "sales", (), TimeAxis("mdy_slash", "daily"), 3, 2)
    rows = [["2014-12-15", 1.0], ["12/16/2014", 2.0]]
    with pytest.raises(HistoryError, match=r"line 2: column 'day': '2014-12-15' is not a date as MM/DD/YYYY"):
        read_history(_write(tmp_path / "h.csv", ["day", "sales"], rows), info)


def test_a_unix_time_in_a_message_says_its_date_too():
    axis = TimeAxis("unix", "daily")
    period = axis.period("1391126400")
    assert axis.label(period) == "1391126400" and axis.shown(period) == "1391126400 (2014-01-31)"
    assert TimeAxis("iso", "daily").shown(period) == "2014-01-31"


def test_forecasts_are_written_with_every_digit_the_model_gave():
    """Half-hourly demand in the millions was written 1.48602e+06 (six digits); REST gave them all."""
    import io

    from serving.forecast_client import SeriesWindow, write_forecasts

    info = SeriesInfo("day", "demand", (), TimeAxis("iso", "daily"), 3, 3)
    out = io.StringIO()
    window = SeriesWindow((), date(2000, 8, 27).toordinal(), (1.0, 2.0, 3.0))
    write_forecasts(info, [window], [[1486020.5, 0.1, -2.5e-05]], out)
    assert out.getvalue().splitlines()[1:] == ["2000-08-28,1486020.5", "2000-08-29,0.1", "2000-08-30,-0.000025"]


def test_times_closer_than_a_day_and_trading_days_are_named_for_what_they_are(tmp_path):
    """Half-hourly demand was told 'falls in the same daily step ... its times change step'; a
    stock's trading days, '2013-03-02 missing, and 78 of 278 daily points' with no word of weekends."""
    halves = [f"2000-06-0{5 + h // 48} {h % 48 // 2:02d}:{30 * (h % 2):02d}" for h in range(144)]
    path = _write(tmp_path / "half.csv", ["t", "y"], [[t, i] for i, t in enumerate(halves)])
    with pytest.raises(InputDataError, match=r"line 3: '2000-06-05 00:30' is on the same day as line 2 \('2000-06-05 "
                                             r"00:00'\): steps shorter than a day are not read"):
        _profile(path)
    with pytest.raises(InputDataError, match=r"less than a day apart: steps shorter than a day are not read"):
        _profile(_write(tmp_path / "hours.csv", ["t", "y"], [[t, i] for i, t in enumerate(halves[:48])]))
    first = date(2013, 1, 7)  # a Monday
    days = [first + timedelta(days=d) for d in range(140) if (first + timedelta(days=d)).weekday() < 5]
    path = _write(tmp_path / "trading.csv", ["t", "y"], [[d.isoformat(), i] for i, d in enumerate(days)])
    with pytest.raises(InputDataError, match=r"2013-01-12 missing, and 38 of 138 daily points in all .*; most missing "
                                             r"days are weekends: a series of trading or working days"):
        _profile(path)


def test_a_wide_table_and_a_step_of_several_periods_are_named():
    """A probe's visnights (one column per region) ran on one, saying nothing of the other 19, and
    refused two labels as a column not found; Olympic years were 'a gappy yearly series'."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        wide = _write(Path(tmp) / "wide.csv", ["t", "y", "North", "South"],
                      [[t, i, i * 2, i * 3] for i, t in enumerate(_monthly(40))])
        assert _profile(wide).unread == ("North", "South")
        with pytest.raises(InputDataError, match=r"--label y,North: a forecast reads one value column; series side "
                                                 r"by side in columns are a long table's rows"):
            profile_series(open_table(wide), "y,North", ForecastOptions("t", 3))
        games = [1896 + 4 * i for i in range(30) if 1896 + 4 * i not in (1916, 1940, 1944)]
        olympics = _write(Path(tmp) / "games.csv", ["t", "y"], [[str(year), 50 - i * 0.2] for i, year in
                                                               enumerate(games)])
        with pytest.raises(InputDataError, match=r"its values come every 4 yearly steps: a step of 4 is not read"):
            _profile(olympics)
