"""`mlops predict HISTORY.csv` for a forecaster: the recent history of one or many series (a long
table: the ID columns, the time, the value) turned into one request row per series (its last
``lookback`` values, in time order; a daily or weekly model's first forecast date; each known-ahead
covariate over those points and the next ``horizon``: the history then holds the future rows with
their covariates and an empty value), and the answers written back as rows of the series' future
steps (ID columns, time, forecast), dated as the history is. The model's ``series.json`` (served
in ``/metadata``) says which columns are which and how times read.
"""
import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, TextIO, Tuple

import numpy as np

from serving.codec.columns import csv_dict_reader, is_missing_text
from serving.codec.periods import NEXT_DATE_INPUT, WINDOW_INPUT, PeriodError, SeriesInfo


class HistoryError(ValueError):
    """A history CSV that cannot make a forecast request (one line naming the file, line or series)."""


@dataclass(frozen=True)
class SeriesWindow:
    key: Tuple[str, ...]  # the series' ID values
    last: int  # the period of its newest point
    values: Tuple[float, ...]  # its last ``lookback`` values
    covariates: Tuple[Tuple[float, ...], ...] = ()  # each covariate's lookback + horizon values (info's order)


def _column(header: Dict[str, str], name: str, path: Path) -> str:
    """The header field of column ``name`` (headers are matched trimmed)."""
    if name not in header:
        raise HistoryError(f"{path}: column '{name}' not found; a history for this model has "
                           f"{name!r} among its columns (found: {', '.join(header)})")
    return header[name]


def read_history(path: Path, info: SeriesInfo) -> List[SeriesWindow]:
    """The last ``lookback`` points of each series of the history, on the model's time axis."""
    if not path.is_file():
        raise HistoryError(f"{path}: no such file")
    points: Dict[Tuple[str, ...], Dict[int, float]] = defaultdict(dict)
    lines: Dict[Tuple[str, ...], Dict[int, int]] = defaultdict(dict)  # the line of each series' time
    known: Dict[Tuple[str, ...], Dict[int, Tuple[str, ...]]] = defaultdict(dict)  # covariate cells by period
    with csv_dict_reader(path) as reader:
        header = {name.strip(): name for name in reader.fieldnames or []}
        if not header:
            raise HistoryError(f"{path}: empty")
        time, label = _column(header, info.time, path), _column(header, info.label, path)
        ids = [_column(header, name, path) for name in info.series_id]
        covariates = [_column(header, column, path) for column, _ in info.covariates]
        for row in reader:
            if not any(str(value).strip() for value in row.values() if value):  # a blank line of delimiters
                continue
            cells = {field: (row.get(field) or "").strip() for field in (time, label, *ids, *covariates)}
            try:
                period = info.axis.period(cells[time])
            except PeriodError as e:
                raise HistoryError(f"{path}: line {reader.line_num}: column '{info.time}': {e}") from None
            key = tuple(cells[field] for field in ids)
            if period in lines[key]:  # as training refuses it: which value is this time's is not ours to pick
                raise HistoryError(f"{path}: line {reader.line_num}: {cells[time]!r} again (line "
                                   f"{lines[key][period]} has the same time in this series); one row per time")
            lines[key][period] = reader.line_num
            if covariates:
                known[key][period] = tuple(cells[field] for field in covariates)
            if is_missing_text(cells[label]):
                continue
            try:
                points[key][period] = float(cells[label])
            except ValueError:
                raise HistoryError(f"{path}: line {reader.line_num}: column '{info.label}': {cells[label]!r} is not "
                                   "a number") from None
    return [_window(key, series, known[key], info, path, lines[key]) for key, series in sorted(points.items())]


def _window(key: Tuple[str, ...], series: Dict[int, float], known: Dict[int, Tuple[str, ...]], info: SeriesInfo,
            path: Path, lines: Dict[int, int]) -> SeriesWindow:
    """``lines``: the line of each time the history has a row for, with a value or an empty one."""
    last = max(series)
    name = f"series {'/'.join(key)}" if key else "the series"
    periods = range(last - info.lookback + 1, last + 1)
    missing = [p for p in periods if p not in series]
    if min(lines) > periods[0]:
        raise HistoryError(f"{path}: {name} has {len(series)} {info.axis.frequency} points; the model reads the "
                           f"last {info.lookback} of each series")
    if missing:
        where = f"line {lines[missing[0]]} has no value" if missing[0] in lines else "no row"
        raise HistoryError(f"{path}: {name} lacks {info.axis.shown(missing[0])} ({where}; {len(missing)} of the last "
                           f"{info.lookback} {info.axis.frequency} points the model reads are missing: fill them, as "
                           "training filled its gaps)")
    return SeriesWindow(key, last, tuple(series[p] for p in periods), _covariates(name, last, known, info, path))


def _covariates(name: str, last: int, known: Dict[int, Tuple[str, ...]], info: SeriesInfo,
                path: Path) -> Tuple[Tuple[float, ...], ...]:
    """Each covariate at the window's points and the forecast steps (rows after the last value)."""
    out = []
    for index, (column, _) in enumerate(info.covariates):
        values = []
        for period in range(last - info.lookback + 1, last + info.horizon + 1):
            ahead = f"; the {info.horizon} rows after the last value give the known-ahead covariates" \
                if period > last else ""
            if period not in known:
                raise HistoryError(f"{path}: {name} has no row at {info.axis.shown(period)} for column "
                                   f"'{column}'{ahead}")
            cell = known[period][index]
            try:
                values.append(float(cell))
            except ValueError:
                raise HistoryError(f"{path}: {name}: column '{column}' at {info.axis.shown(period)} is "
                                   f"{cell!r}, not a number{ahead}") from None
        out.append(tuple(values))
    return tuple(out)


def request_row(window: SeriesWindow, info: SeriesInfo) -> Dict[str, Any]:
    """The serving_default inputs of one series (as ``SeriesInfo.inputs`` describes them)."""
    row: Dict[str, Any] = {WINDOW_INPUT: list(window.values)}
    if info.axis.has_calendar:
        row[NEXT_DATE_INPUT] = info.axis.iso_date(window.last + 1)
    row.update({key: list(values) for (_, key), values in zip(info.covariates, window.covariates)})
    return row


def forecast_request(windows: Sequence[SeriesWindow], info: SeriesInfo) -> Dict[str, Any]:
    return {"instances": [request_row(w, info) for w in windows]}


def float32_text(value: float) -> str:
    """A model's float32 output as its shortest exact text, without an exponent: 1486020.5, not
    the 1.48602e+06 six digits gave for a series of demands in the millions."""
    return np.format_float_positional(np.float32(value), unique=True, trim="-")


def write_forecasts(info: SeriesInfo, windows: Sequence[SeriesWindow], forecasts: Sequence[Sequence[float]],
                    out: TextIO, label: Optional[str] = None) -> int:
    """One row per series and future step: ID columns, time, forecast. Returns the rows written."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*info.series_id, info.time, label or "forecast"])
    count = 0
    for window, values in zip(windows, forecasts):
        for step, value in enumerate(values, start=1):
            writer.writerow([*window.key, info.axis.label(window.last + step), float32_text(value)])
            count += 1
    return count
