"""`mlops predict HISTORY.csv` for a forecaster: the recent history of one or many series (a long
table: the ID columns, the time, the value) turned into one request row per series (its last
``lookback`` values, in time order), and the answers written back as rows of the series' future
steps (ID columns, time, forecast), dated as the history is. The model's ``series.json`` (served
in ``/metadata``) says which columns are which and how times read.
"""
import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, TextIO, Tuple

from serving.codec.columns import is_missing_text, sniff_delimiter
from serving.codec.periods import WINDOW_INPUT, PeriodError, SeriesInfo


class HistoryError(ValueError):
    """A history CSV that cannot make a forecast request (one line naming the file, line or series)."""


@dataclass(frozen=True)
class SeriesWindow:
    key: Tuple[str, ...]  # the series' ID values
    last: int  # the period of its newest point
    values: Tuple[float, ...]  # its last ``lookback`` values


def _rows(path: Path) -> Tuple[List[str], List[List[str]]]:
    if not path.is_file():
        raise HistoryError(f"{path}: no such file")
    with open(path, newline="", encoding="utf-8-sig") as f:
        text = f.read()
    rows = list(csv.reader(text.splitlines(), delimiter=sniff_delimiter(text[:65536])))
    if not rows:
        raise HistoryError(f"{path}: empty")
    return [h.strip() for h in rows[0]], rows[1:]


def _index(header: List[str], name: str, path: Path) -> int:
    if name not in header:
        raise HistoryError(f"{path}: column '{name}' not found; a history for this model has "
                           f"{name!r} among its columns (found: {', '.join(header)})")
    return header.index(name)


def read_history(path: Path, info: SeriesInfo) -> List[SeriesWindow]:
    """The last ``lookback`` points of each series of the history, on the model's time axis."""
    header, rows = _rows(path)
    at_time, at_value = _index(header, info.time, path), _index(header, info.label, path)
    at_ids = [_index(header, name, path) for name in info.series_id]
    points: Dict[Tuple[str, ...], Dict[int, float]] = defaultdict(dict)
    for line, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        key = tuple(row[i].strip() for i in at_ids)
        try:
            period = info.axis.period(row[at_time])
        except (PeriodError, IndexError) as e:
            raise HistoryError(f"{path}: line {line}: column '{info.time}': {e}") from None
        cell = row[at_value] if at_value < len(row) else ""
        if is_missing_text(cell):
            continue
        try:
            points[key][period] = float(cell)
        except ValueError:
            raise HistoryError(f"{path}: line {line}: column '{info.label}': {cell!r} is not a number") from None
    return [_window(key, series, info, path) for key, series in sorted(points.items())]


def _window(key: Tuple[str, ...], series: Dict[int, float], info: SeriesInfo, path: Path) -> SeriesWindow:
    last = max(series)
    periods = range(last - info.lookback + 1, last + 1)
    missing = [p for p in periods if p not in series]
    if missing:
        name = f"series {'/'.join(key)}" if key else "the series"
        raise HistoryError(f"{path}: {name} lacks {info.axis.label(missing[0])} ({len(missing)} of the last "
                           f"{info.lookback} {info.axis.frequency} points the model reads are missing)")
    return SeriesWindow(key, last, tuple(series[p] for p in periods))


def forecast_request(windows: Sequence[SeriesWindow]) -> Dict[str, Any]:
    return {"instances": [{WINDOW_INPUT: list(w.values)} for w in windows]}


def write_forecasts(info: SeriesInfo, windows: Sequence[SeriesWindow], forecasts: Sequence[Sequence[float]],
                    out: TextIO, label: Optional[str] = None) -> int:
    """One row per series and future step: ID columns, time, forecast. Returns the rows written."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*info.series_id, info.time, label or "forecast"])
    count = 0
    for window, values in zip(windows, forecasts):
        for step, value in enumerate(values, start=1):
            writer.writerow([*window.key, info.axis.label(window.last + step), f"{float(value):.6g}"])
            count += 1
    return count
